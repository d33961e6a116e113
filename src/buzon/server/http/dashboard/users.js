// The Users view (admins only): every account; enable, disable or delete one.
import { api, path } from "./api.js";
import { $, h } from "./dom.js";
import { when } from "./format.js";
import { act, notify } from "./notice.js";
import { currentUser } from "./session.js";
import { fillTable } from "./table.js";

export async function loadUsers() {
  const list = await api("GET", "/users");
  const me = currentUser().username;
  const columns = [
    {
      title: "Name",
      cell: (u) => [u.username, u.username === me && h("span", { class: "tag" }, "you")],
    },
    { title: "Role", cell: (u) => u.role },
    {
      title: "Status",
      cell: (u) => h("span", { class: u.disabled ? "tag bad" : "tag" }, u.disabled ? "disabled" : "active"),
    },
    { title: "Created", cell: (u) => when(u.created_at) },
    {
      title: "",
      cell: (u) => {
        if (u.username === me) return ""; // not your own account from here
        const toggle = h("button", { type: "button", class: "toggle" }, u.disabled ? "Enable" : "Disable");
        toggle.addEventListener("click", () => act(toggle, () => setDisabled(u, !u.disabled)));
        const remove = h("button", { type: "button", class: "danger delete" }, "Delete");
        remove.addEventListener("click", () => act(remove, () => deleteUser(u)));
        return h("div", { class: "row" }, toggle, remove);
      },
    },
  ];
  fillTable($("user-table"), columns, list, { attrs: (u) => ({ "data-name": u.username }) });
}

async function setDisabled(user, disabled) {
  const warning = `Disable ${user.username}? Their connections close and their tokens stop working.`;
  if (disabled && !confirm(warning)) return;
  await api("PATCH", path("users", user.username), { body: { disabled } });
  notify(`${user.username} is ${disabled ? "disabled" : "enabled"}.`);
  await loadUsers();
}

async function deleteUser(user) {
  if (!confirm(`Delete user ${user.username}? Their queues and channels stay.`)) return;
  await api("DELETE", path("users", user.username));
  notify(`Deleted user ${user.username}.`);
  await loadUsers();
}
