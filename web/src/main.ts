// The dashboard of the executions service: routes (`#/` the list, `#/e/<id>` one
// execution), the time-zone picker, and the token prompt when the server asks for one.
import "./style.css";
import { setToken, token } from "./api";
import { h, replace } from "./dom";
import { showExecution } from "./execution";
import { showList } from "./list";
import { browserZone, setZone, zone, zones } from "./time";

const main = document.getElementById("main") as HTMLElement;
const settings = document.getElementById("settings") as HTMLElement;
let page: AbortController | undefined;

/** Shows the page the URL names, ending the previous one (its calls and streams). */
function route(): void {
  page?.abort();
  page = new AbortController();
  const hash = location.hash.replace(/^#/, "") || "/";
  const [path = "/", query = ""] = hash.split("?", 2);
  const one = /^\/e\/([^/]+)$/.exec(path);
  drawSettings();
  if (one) {
    document.title = "Execution · Executions";
    showExecution(main, decodeURIComponent(one[1]!), page.signal, askForToken);
  } else {
    document.title = "Executions";
    showList(main, new URLSearchParams(query), page.signal, askForToken);
  }
}

/** Replaces the page with the token prompt (the server has tokens and ours is missing or unknown). */
function askForToken(): void {
  page?.abort();
  const input = h("input", { type: "password", name: "token", autocomplete: "current-password", required: true, id: "token" });
  const hadOne = token() !== null;
  setToken(null);
  replace(
    main,
    h("h1", {}, "Sign in"),
    h(
      "form",
      {
        class: "token",
        onsubmit: (event: Event) => {
          event.preventDefault();
          setToken(input.value.trim());
          route();
        },
      },
      h("p", {}, hadOne ? "The server did not accept that token." : "This server needs a token to show its executions."),
      h("label", { for: "token" }, "Bearer token"),
      input,
      h("p", { class: "muted" }, "Kept in this tab only (session storage) and sent with every call."),
      h("button", { type: "submit" }, "Continue"),
    ),
  );
  drawSettings();
  input.focus();
}

function drawSettings(): void {
  const picker = h("select", { id: "zone", name: "zone" });
  for (const name of zones()) {
    const label = name === browserZone() ? `${name} (this browser)` : name;
    picker.append(h("option", { value: name, selected: name === zone() }, label));
  }
  picker.addEventListener("change", () => {
    setZone(picker.value);
    route();
  });
  const signOut = token()
    ? h("button", { type: "button", onclick: () => { setToken(null); route(); } }, "Forget token")
    : null;
  replace(settings, h("label", { for: "zone" }, "Time zone "), picker, signOut);
}

window.addEventListener("hashchange", route);
route();
