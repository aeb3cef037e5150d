import { render } from "preact";

render(<p>Taskflow</p>, document.getElementById("app")!);
