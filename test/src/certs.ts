/**
 * Real certificates for tests, made with openssl into a temporary folder: a CA, a server
 * certificate for 127.0.0.1/localhost, client certificates signed by that CA, and a second CA that
 * signs nothing the node trusts.
 */
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";

export interface TestPki {
  dir: string;
  /** Absolute paths. */
  ca: string;
  serverCert: string;
  serverKey: string;
  /** A client certificate (CN=`name`) signed by the CA: paths of cert and key. */
  client(name: string): { cert: string; key: string };
  /** Another CA, unknown to the node. */
  otherCa: string;
  read(file: string): Buffer;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function newCa(dir: string, name: string): void {
  openssl(dir, ["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.pem`, "-days", "2", "-subj", `/CN=${name}`]);
}

function signed(dir: string, name: string, cn: string, ext: string): void {
  writeFileSync(path.join(dir, `${name}.ext`), ext);
  openssl(dir, ["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${cn}`]);
  openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.pem`, "-days", "2", "-extfile", `${name}.ext`]);
}

/** Makes a CA and a server certificate in `dir`. */
export function makePki(dir: string): TestPki {
  newCa(dir, "ca");
  newCa(dir, "other-ca");
  signed(dir, "server", "taskflow-control", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n");
  return {
    dir,
    ca: path.join(dir, "ca.pem"),
    serverCert: path.join(dir, "server.pem"),
    serverKey: path.join(dir, "server.key"),
    otherCa: path.join(dir, "other-ca.pem"),
    client(name) {
      signed(dir, name, name, "extendedKeyUsage=clientAuth\n");
      return { cert: path.join(dir, `${name}.pem`), key: path.join(dir, `${name}.key`) };
    },
    read: (file) => readFileSync(file),
  };
}
