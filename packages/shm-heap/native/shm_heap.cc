// Native half of @taskflow/shm-heap: POSIX shared memory segments, robust process-shared
// mutexes (liveness slots) and shared futex wait/wake. Only src/native.ts loads this; keep the
// surface small. Written against the C N-API: no C++ wrapper layer on calls made per wait/wake.

#include <node_api.h>

#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

// Must match src/layout.ts.
constexpr size_t kStateOffset = 3 * 4;
// Liveness slots: one robust process-shared mutex per attached thread, held for as long as
// that thread is attached. The kernel marks it "owner died" when the thread or its process
// dies, which is how a waiter learns that the heap lock's owner is gone.
constexpr size_t kSlotsOffset = 256;
constexpr int kSlots = 64;
constexpr size_t kSlotBytes = 64;
constexpr size_t kSlotPidOffset = 48;
constexpr size_t kMinBytes = kSlotsOffset + kSlots * kSlotBytes;
static_assert(sizeof(pthread_mutex_t) <= kSlotPidOffset, "pthread_mutex_t does not fit a slot");

struct Mapping {
  dev_t dev;
  ino_t ino;
  uint8_t* base;
  size_t bytes;
};

// Process-wide: a segment is mapped once per process and never unmapped, because the kernel
// walks robust-mutex lists by address when a thread dies and worker threads may hold the lock.
std::mutex g_table_mutex;
std::vector<Mapping*> g_table;

pthread_mutex_t* SlotMutex(Mapping* m, int slot) { return reinterpret_cast<pthread_mutex_t*>(m->base + kSlotsOffset + slot * kSlotBytes); }
int32_t* SlotPid(Mapping* m, int slot) { return reinterpret_cast<int32_t*>(m->base + kSlotsOffset + slot * kSlotBytes + kSlotPidOffset); }

napi_value Throw(napi_env env, const char* code, const std::string& message) {
  napi_value msg, err, code_value;
  napi_create_string_utf8(env, message.c_str(), message.size(), &msg);
  napi_create_error(env, nullptr, msg, &err);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_set_named_property(env, err, "code", code_value);
  napi_throw(env, err);
  return nullptr;
}

napi_value ThrowErrno(napi_env env, const char* what, int err) {
  const char* code = err == ENOENT   ? "ENOENT"
                     : err == EACCES ? "EACCES"
                     : err == EEXIST ? "EEXIST"
                     : err == EINVAL ? "EINVAL"
                     : err == ENOMEM ? "ENOMEM"
                     : err == ENOSPC ? "ENOSPC"
                                     : "ESYSCALL";
  return Throw(env, code, std::string(what) + ": " + strerror(err));
}

bool GetString(napi_env env, napi_value v, std::string* out) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &len) != napi_ok) return false;
  out->resize(len);
  std::vector<char> buf(len + 1);
  napi_get_value_string_utf8(env, v, buf.data(), len + 1, &len);
  out->assign(buf.data(), len);
  return true;
}

double NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

// Shared (not FUTEX_PRIVATE) so waiters in other processes are found through the page.
// Returns 0 woken (or interrupted), 1 timed out, 2 value differed.
// A timeout that is not finite or beyond ~30 years means "no timeout".
int FutexWait(int32_t* addr, int32_t expected, double timeout_ms) {
  if (!(timeout_ms > 0)) timeout_ms = 0;  // also NaN
  timespec ts;
  timespec* tsp = nullptr;
  if (timeout_ms < 1e12) {
    ts.tv_sec = static_cast<time_t>(timeout_ms / 1000);
    ts.tv_nsec = static_cast<long>((timeout_ms - ts.tv_sec * 1000.0) * 1e6);
    if (ts.tv_nsec > 999999999) ts.tv_nsec = 999999999;
    tsp = &ts;
  }
  long r = syscall(SYS_futex, addr, FUTEX_WAIT, expected, tsp, nullptr, 0);
  if (r == 0) return 0;
  if (errno == ETIMEDOUT) return 1;
  if (errno == EAGAIN) return 2;
  return 0;
}

int FutexWake(int32_t* addr, int32_t count) {
  long r = syscall(SYS_futex, addr, FUTEX_WAKE, count, nullptr, nullptr, 0);
  return r < 0 ? 0 : static_cast<int>(r);
}

Mapping* MappingAt(napi_env env, napi_value v) {
  int32_t index = -1;
  napi_get_value_int32(env, v, &index);
  std::lock_guard<std::mutex> guard(g_table_mutex);
  if (index < 0 || static_cast<size_t>(index) >= g_table.size()) return nullptr;
  return g_table[index];
}

bool SlotArgs(napi_env env, napi_callback_info info, Mapping** m, int32_t* slot) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < 2) return false;
  *m = MappingAt(env, argv[0]);
  if (*m == nullptr) return false;
  napi_get_value_int32(env, argv[1], slot);
  return *slot >= 0 && *slot < kSlots;
}

// claimSlot(index) -> slot, or -1 when all are taken. The calling thread then holds the slot's
// robust mutex until releaseSlot (or until it dies, which the kernel records in the mutex).
napi_value ClaimSlot(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  Mapping* m = argc < 1 ? nullptr : MappingAt(env, argv[0]);
  if (m == nullptr) return Throw(env, "EINVAL", "claimSlot(index)");
  int found = -1;
  for (int slot = 0; slot < kSlots && found < 0; slot++) {
    int r = pthread_mutex_trylock(SlotMutex(m, slot));
    if (r == EOWNERDEAD) r = pthread_mutex_consistent(SlotMutex(m, slot));
    if (r == 0) found = slot;
  }
  if (found >= 0) __atomic_store_n(SlotPid(m, found), static_cast<int32_t>(getpid()), __ATOMIC_SEQ_CST);
  napi_value out;
  napi_create_int32(env, found, &out);
  return out;
}

// probeSlot(index, slot) -> 0 while its thread lives; 1 when it died (the caller now holds the
// slot and must releaseSlot); 2 when nobody holds it (the caller holds it now, likewise).
napi_value ProbeSlot(napi_env env, napi_callback_info info) {
  Mapping* m;
  int32_t slot;
  if (!SlotArgs(env, info, &m, &slot)) return Throw(env, "EINVAL", "probeSlot(index, slot)");
  int r = pthread_mutex_trylock(SlotMutex(m, slot));
  int answer = 0;
  if (r == EOWNERDEAD) {
    pthread_mutex_consistent(SlotMutex(m, slot));
    answer = 1;
  } else if (r == 0) {
    answer = 2;
  } else if (r != EBUSY) {
    return ThrowErrno(env, "pthread_mutex_trylock", r);
  }
  napi_value out;
  napi_create_int32(env, answer, &out);
  return out;
}

// releaseSlot(index, slot): gives the slot back (only by the thread that holds it).
napi_value ReleaseSlot(napi_env env, napi_callback_info info) {
  Mapping* m;
  int32_t slot;
  if (!SlotArgs(env, info, &m, &slot)) return Throw(env, "EINVAL", "releaseSlot(index, slot)");
  __atomic_store_n(SlotPid(m, slot), 0, __ATOMIC_SEQ_CST);
  int r = pthread_mutex_unlock(SlotMutex(m, slot));
  if (r != 0) return ThrowErrno(env, "pthread_mutex_unlock", r);
  return nullptr;
}

bool WordArgs(napi_env env, napi_callback_info info, Mapping** m, int32_t** addr, int32_t* value, double* ms, size_t want) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (argc < want) return false;
  *m = MappingAt(env, argv[0]);
  if (*m == nullptr) return false;
  int32_t offset = -1;
  napi_get_value_int32(env, argv[1], &offset);
  if (offset < 0 || offset % 4 != 0 || static_cast<size_t>(offset) + 4 > (*m)->bytes) return false;
  *addr = reinterpret_cast<int32_t*>((*m)->base + offset);
  napi_get_value_int32(env, argv[2], value);
  if (want > 3) napi_get_value_double(env, argv[3], ms);
  return true;
}

// wait(index, byteOffset, expected, timeoutMs) -> 0 woken, 1 timed out, 2 value differed.
napi_value Wait(napi_env env, napi_callback_info info) {
  Mapping* m;
  int32_t* addr;
  int32_t expected = 0;
  double ms = 0;
  if (!WordArgs(env, info, &m, &addr, &expected, &ms, 4)) return Throw(env, "EINVAL", "wait(index, byteOffset, expected, timeoutMs)");
  napi_value out;
  napi_create_int32(env, FutexWait(addr, expected, ms), &out);
  return out;
}

// wake(index, byteOffset, count) -> waiters woken.
napi_value Wake(napi_env env, napi_callback_info info) {
  Mapping* m;
  int32_t* addr;
  int32_t count = 0;
  double unused = 0;
  if (!WordArgs(env, info, &m, &addr, &count, &unused, 3)) return Throw(env, "EINVAL", "wake(index, byteOffset, count)");
  napi_value out;
  napi_create_int32(env, FutexWake(addr, count), &out);
  return out;
}

// waitAsync: the futex wait runs on its own short-lived thread, never on the event loop or the
// libuv pool (a pool thread tied up per waiter starves fs and dns work).
struct AsyncWait {
  napi_deferred deferred;
  napi_threadsafe_function tsfn;
  int result;
};

void ResolveOnLoop(napi_env env, napi_value, void*, void* data) {
  auto* w = static_cast<AsyncWait*>(data);
  if (env != nullptr) {
    napi_value v;
    napi_create_int32(env, w->result, &v);
    napi_resolve_deferred(env, w->deferred, v);
  }
  delete w;
}

napi_value WaitAsync(napi_env env, napi_callback_info info) {
  Mapping* m;
  int32_t* addr;
  int32_t expected = 0;
  double ms = 0;
  if (!WordArgs(env, info, &m, &addr, &expected, &ms, 4)) return Throw(env, "EINVAL", "waitAsync(index, byteOffset, expected, timeoutMs)");
  auto* w = new AsyncWait{nullptr, nullptr, 0};
  napi_value promise, name;
  napi_create_promise(env, &w->deferred, &promise);
  napi_create_string_utf8(env, "shm-heap waitAsync", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, nullptr, nullptr, nullptr, ResolveOnLoop, &w->tsfn) != napi_ok) {
    delete w;
    return Throw(env, "ESYSCALL", "napi_create_threadsafe_function failed");
  }
  try {
    std::thread([w, addr, expected, ms]() {
      w->result = FutexWait(addr, expected, ms);
      napi_threadsafe_function tsfn = w->tsfn;
      // ResolveOnLoop deletes w (also when the env is going away and it gets env == nullptr).
      napi_call_threadsafe_function(tsfn, w, napi_tsfn_blocking);
      napi_release_threadsafe_function(tsfn, napi_tsfn_release);
    }).detach();
  } catch (...) {
    napi_release_threadsafe_function(w->tsfn, napi_tsfn_release);
    return Throw(env, "ESYSCALL", "could not start a waiter thread");
  }
  return promise;
}

napi_value Unlink(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  std::string name;
  if (argc < 1 || !GetString(env, argv[0], &name)) return Throw(env, "EINVAL", "unlink(name)");
  napi_value out;
  if (shm_unlink(name.c_str()) == 0) {
    napi_get_boolean(env, true, &out);
    return out;
  }
  if (errno == ENOENT) {
    napi_get_boolean(env, false, &out);
    return out;
  }
  return ThrowErrno(env, "shm_unlink", errno);
}

bool InitRobustMutex(pthread_mutex_t* mutex) {
  pthread_mutexattr_t attr;
  if (pthread_mutexattr_init(&attr) != 0) return false;
  bool ok = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED) == 0 &&
            pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST) == 0 && pthread_mutex_init(mutex, &attr) == 0;
  pthread_mutexattr_destroy(&attr);
  return ok;
}

// open(name, bytes, create, timeoutMs) -> { index, buffer, creator, lock, unlock }
// With create, O_EXCL elects exactly one creator; everybody else attaches. The creator sizes
// the segment and initialises the mutex; the JS side then fills the header and publishes
// state = ready. Attachers wait (bounded) for the size here and for the state in JS.
napi_value Open(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  std::string name;
  double bytes_d = 0, timeout_ms = 0;
  bool create = false;
  if (argc < 4 || !GetString(env, argv[0], &name) || napi_get_value_double(env, argv[1], &bytes_d) != napi_ok ||
      napi_get_value_bool(env, argv[2], &create) != napi_ok || napi_get_value_double(env, argv[3], &timeout_ms) != napi_ok) {
    return Throw(env, "EINVAL", "open(name, bytes, create, timeoutMs)");
  }
  const size_t bytes = static_cast<size_t>(bytes_d);
  bool creator = false;
  int fd = -1;
  if (create) {
    if (bytes < kMinBytes) return Throw(env, "EINVAL", "segment size below the header size");
    fd = shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL, 0600);
    if (fd >= 0) {
      creator = true;
      if (ftruncate(fd, static_cast<off_t>(bytes)) != 0) {
        int err = errno;
        close(fd);
        shm_unlink(name.c_str());
        return ThrowErrno(env, "ftruncate", err);
      }
    } else if (errno != EEXIST) {
      return ThrowErrno(env, "shm_open", errno);
    }
  }
  if (fd < 0) {
    fd = shm_open(name.c_str(), O_RDWR, 0);
    if (fd < 0) return ThrowErrno(env, "shm_open", errno);
  }
  struct stat st;
  // A creator between shm_open and ftruncate leaves the size 0: wait for it, bounded, so a
  // creator that died there makes us fail instead of hang.
  const double deadline = NowMs() + timeout_ms;
  for (;;) {
    if (fstat(fd, &st) != 0) {
      int err = errno;
      close(fd);
      return ThrowErrno(env, "fstat", err);
    }
    if (st.st_size > 0) break;
    if (NowMs() >= deadline) {
      close(fd);
      return Throw(env, "ETIMEDOUT", "size still 0 after " + std::to_string(static_cast<long>(timeout_ms)) + " ms");
    }
    usleep(1000);
  }
  if (static_cast<size_t>(st.st_size) < kMinBytes) {
    close(fd);
    return Throw(env, "ETOOSMALL", std::to_string(static_cast<long long>(st.st_size)) + " bytes, a heap needs at least " + std::to_string(kMinBytes));
  }
  Mapping* m = nullptr;
  int index = -1;
  {
    std::lock_guard<std::mutex> guard(g_table_mutex);
    for (size_t i = 0; i < g_table.size(); i++) {
      if (g_table[i]->dev == st.st_dev && g_table[i]->ino == st.st_ino) {
        m = g_table[i];
        index = static_cast<int>(i);
        break;
      }
    }
    if (m == nullptr) {
      void* base = mmap(nullptr, static_cast<size_t>(st.st_size), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      if (base == MAP_FAILED) {
        int err = errno;
        close(fd);
        if (creator) shm_unlink(name.c_str());
        return ThrowErrno(env, "mmap", err);
      }
      m = new Mapping{st.st_dev, st.st_ino, static_cast<uint8_t*>(base), static_cast<size_t>(st.st_size)};
      g_table.push_back(m);
      index = static_cast<int>(g_table.size() - 1);
    }
  }
  close(fd);  // the mapping keeps the segment alive
  if (creator) {
    __atomic_store_n(reinterpret_cast<int32_t*>(m->base + kStateOffset), 1, __ATOMIC_SEQ_CST);
    for (int slot = 0; slot < kSlots; slot++) {
      if (!InitRobustMutex(SlotMutex(m, slot))) {
        shm_unlink(name.c_str());
        return Throw(env, "ESYSCALL", "could not initialise a robust process-shared mutex");
      }
    }
  }

  napi_value out, v;
  napi_create_object(env, &out);
  napi_create_int32(env, index, &v);
  napi_set_named_property(env, out, "index", v);
  // No finalizer: the memory belongs to the process-wide mapping, which outlives the buffer.
  if (napi_create_external_arraybuffer(env, m->base, m->bytes, nullptr, nullptr, &v) != napi_ok) {
    return Throw(env, "ESYSCALL", "napi_create_external_arraybuffer failed");
  }
  napi_set_named_property(env, out, "buffer", v);
  napi_get_boolean(env, creator, &v);
  napi_set_named_property(env, out, "creator", v);
  return out;
}

napi_value Init(napi_env env, napi_value exports) {
  const napi_property_descriptor props[] = {
      {"open", nullptr, Open, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"claimSlot", nullptr, ClaimSlot, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"probeSlot", nullptr, ProbeSlot, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"releaseSlot", nullptr, ReleaseSlot, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wait", nullptr, Wait, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"wake", nullptr, Wake, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"waitAsync", nullptr, WaitAsync, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unlink", nullptr, Unlink, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

}  // namespace

NAPI_MODULE_INIT() { return Init(env, exports); }
