// The Redrive button of a dead-letter queue: moves its messages back to the queues they
// came from (POST /queues/{name}/redrive), then follows the redrive until it ends.
import { api, path } from "./api.js";
import { h } from "./dom.js";
import { count } from "./format.js";
import { act, notify } from "./notice.js";

const POLL_MS = 300;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// reload(): loads the queues table again (depths change as messages move).
export function redriveSection(name, reload) {
  const progress = h("progress", { class: "redrive-progress", max: 1, value: 0, hidden: true });
  const status = h("span", { class: "redrive-status muted", "aria-live": "polite" });
  const button = h("button", { type: "button", class: "redrive" }, "Redrive");
  const section = h("fieldset", { class: "redrive-box" },
    h("legend", null, "Dead letters"),
    h("p", { class: "muted" },
      "Move the waiting messages back to the queues they were dead-lettered from."),
    h("div", { class: "row" }, button, progress, status));

  const show = (r) => {
    progress.hidden = false;
    progress.max = Math.max(r.total, 1);
    progress.value = r.total ? r.moved : 1;
    status.textContent = `${count(r.moved)} of ${count(r.total)} moved`;
  };

  button.addEventListener("click", () => act(button, async () => {
    if (!confirm(`Move the messages waiting in ${name} back to their original queues?`)) return;
    let redrive = await api("POST", path("queues", name, "redrive"), { body: {} });
    show(redrive);
    while (redrive.state === "running" && section.isConnected) {
      await sleep(POLL_MS);
      redrive = await api("GET", path("redrives", redrive.id));
      show(redrive);
    }
    if (redrive.state === "failed") {
      status.textContent += ` — failed: ${redrive.error}`;
      notify(`The redrive of ${name} failed: ${redrive.error}`, true);
    } else if (redrive.state === "done") {
      notify(`Moved ${count(redrive.moved)} messages from ${name} back.`);
    }
    await reload();
  }));
  return section;
}
