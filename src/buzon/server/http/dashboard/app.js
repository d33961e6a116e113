// buzon dashboard: one page on the broker's JSON API (/api/v1). No framework, no build.
//
// Rules this file keeps:
// - Data reaches the page only as text (Text nodes, textContent, setAttribute), never
//   through innerHTML: a queue name, header or body containing markup shows as the
//   characters it is made of.
// - The bearer token lives in sessionStorage (this tab only) and travels in the
//   Authorization header. No cookie, so another site cannot make the browser send an
//   authenticated request (CSRF); nothing secret ever goes into a URL.
// - No inline script or style: the Content-Security-Policy forbids both.
"use strict";

(() => {
  const API = "/api/v1";
  const TOKEN_KEY = "buzon.token";
  const REFRESH_MS = 2000;
  const CHART_SPAN_S = 300;
  const VIEWS = ["overview", "queues", "channels", "connections", "users"];

  const state = {
    token: sessionStorage.getItem(TOKEN_KEY),
    me: null,
    view: null,
    selected: { queues: null, channels: null },
    lists: { queues: [], channels: [] },
    history: [],
    timer: null,
    busy: false,
  };

  const $ = (id) => document.getElementById(id);

  // -- building nodes -------------------------------------------------------------------

  // h("td", {class: "num"}, "3"): strings become Text nodes; "on*" props become listeners.
  function h(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(props || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "class") node.className = value;
      else if (value === true) node.setAttribute(name, "");
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat(Infinity)) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // -- the API --------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, code, message, detail) {
      super(detail ? `${message}: ${detail}` : message);
      this.status = status;
      this.code = code;
    }
  }

  // HTTP header values are bytes; the broker reads them as UTF-8.
  function headerValue(text) {
    return Array.from(new TextEncoder().encode(text), (b) => String.fromCharCode(b)).join("");
  }

  async function api(method, path, { body, key } = {}) {
    const headers = { Accept: "application/json" };
    if (state.token) headers.Authorization = `Bearer ${state.token}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (key) headers["X-Access-Key"] = headerValue(key);
    const response = await fetch(API + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "omit",
      cache: "no-store",
    });
    if (response.status === 204) return null;
    const data = await response.json().catch(() => null);
    if (response.ok) return data;
    const error = (data && data.error) || {};
    if (response.status === 401 && state.token) {
      endSession("Your session has ended; log in again.");
    }
    throw new ApiError(
      response.status,
      error.code || "HTTP_" + response.status,
      error.message || response.statusText || "request failed",
      error.detail || "",
    );
  }

  const path = (...parts) => "/" + parts.map(encodeURIComponent).join("/");

  // -- formatting -----------------------------------------------------------------------

  const count = (n) => Number(n).toLocaleString("en");
  const perSecond = (n) => (n >= 100 ? n.toFixed(0) : n.toFixed(1));

  function bytes(n) {
    if (n === null || n === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let value = n;
    let unit = 0;
    while (value >= 1024 && unit < units.length - 1) {
      value /= 1024;
      unit += 1;
    }
    return `${unit ? value.toFixed(1) : value} ${units[unit]}`;
  }

  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }

  function when(iso) {
    const at = new Date(iso);
    return h("time", { datetime: iso, title: at.toLocaleString() }, at.toLocaleString());
  }

  // -- notices --------------------------------------------------------------------------

  let noticeTimer = null;

  function notify(text, isError = false) {
    const box = $("notice");
    box.textContent = text;
    box.classList.toggle("error", isError);
    box.hidden = false;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => (box.hidden = true), isError ? 8000 : 4000);
  }

  function failed(error) {
    if (error instanceof ApiError && error.status === 401) return; // back at the login form
    notify(error.message || String(error), true);
  }

  // Runs an action of a button or form, with the button disabled meanwhile.
  async function act(button, action) {
    if (button) button.disabled = true;
    try {
      await action();
    } catch (error) {
      failed(error);
    } finally {
      if (button) button.disabled = false;
    }
  }

  // -- session --------------------------------------------------------------------------

  async function start() {
    $("login-form").addEventListener("submit", logIn);
    $("logout").addEventListener("click", logOut);
    $("menu-toggle").addEventListener("click", toggleMenu);
    $("queue-create").addEventListener("submit", (e) => create("queues", e));
    $("channel-create").addEventListener("submit", (e) => create("channels", e));
    window.addEventListener("hashchange", route);
    window.addEventListener("resize", () => state.view === "overview" && drawChart());
    document.addEventListener("visibilitychange", () => !document.hidden && refresh());
    if (!state.token) return showLogin();
    try {
      await enter();
    } catch (error) {
      endSession(error instanceof ApiError && error.status === 401 ? "" : error.message);
    }
  }

  async function logIn(event) {
    event.preventDefault();
    const form = event.currentTarget;
    const button = form.querySelector("button");
    $("login-error").textContent = "";
    button.disabled = true;
    try {
      const session = await api("POST", "/sessions", {
        body: { username: $("login-user").value, password: $("login-password").value },
      });
      state.token = session.token;
      sessionStorage.setItem(TOKEN_KEY, session.token);
      $("login-password").value = "";
      await enter();
    } catch (error) {
      state.token = null;
      sessionStorage.removeItem(TOKEN_KEY);
      $("login-error").textContent = error.message || String(error);
    } finally {
      button.disabled = false;
    }
  }

  async function enter() {
    state.me = await api("GET", "/users/me");
    $("who").textContent = state.me.username;
    for (const link of document.querySelectorAll("[data-admin-only]")) {
      link.hidden = state.me.role !== "admin";
    }
    $("login-view").hidden = true;
    $("app-view").hidden = false;
    clearInterval(state.timer);
    state.timer = setInterval(refresh, REFRESH_MS);
    route();
  }

  async function logOut() {
    try {
      await api("DELETE", "/sessions/current"); // revokes the token on the broker
    } catch (error) {
      // the token is forgotten here either way
    }
    endSession("");
  }

  function endSession(message) {
    state.token = null;
    state.me = null;
    sessionStorage.removeItem(TOKEN_KEY);
    clearInterval(state.timer);
    state.timer = null;
    showLogin();
    $("login-error").textContent = message || "";
  }

  function showLogin() {
    $("app-view").hidden = true;
    $("login-view").hidden = false;
    $("login-user").focus();
  }

  // -- navigation and refresh -----------------------------------------------------------

  function toggleMenu() {
    const nav = $("nav");
    const open = !nav.classList.contains("open");
    nav.classList.toggle("open", open);
    $("menu-toggle").setAttribute("aria-expanded", String(open));
  }

  function route() {
    if (!state.me) return;
    let view = location.hash.slice(1);
    if (!VIEWS.includes(view) || (view === "users" && state.me.role !== "admin")) {
      view = "overview";
    }
    state.view = view;
    for (const name of VIEWS) $("view-" + name).hidden = name !== view;
    for (const link of document.querySelectorAll("#nav a[data-view]")) {
      if (link.dataset.view === view) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    $("nav").classList.remove("open");
    $("menu-toggle").setAttribute("aria-expanded", "false");
    refresh(true);
  }

  const LOADERS = {
    overview: loadOverview,
    queues: () => loadDestinations("queues"),
    channels: () => loadDestinations("channels"),
    connections: loadConnections,
    users: loadUsers,
  };

  // The timer skips a turn while a load is running or the tab is hidden; a change of view
  // (now) loads at once.
  async function refresh(now = false) {
    if (!state.me || (!now && (state.busy || document.hidden))) return;
    state.busy = true;
    try {
      await LOADERS[state.view]();
    } catch (error) {
      failed(error);
    } finally {
      state.busy = false;
    }
  }

  // -- tables ---------------------------------------------------------------------------

  // columns: [{title, num, cell(row) -> node | string}]; attrs(row) -> attributes of the <tr>
  function fillTable(table, columns, rows, { attrs, empty } = {}) {
    const head = h("thead", null, h("tr", null, columns.map((c) =>
      h("th", { class: c.num ? "num" : null, scope: "col" }, c.title))));
    const body = h("tbody", null, rows.length
      ? rows.map((row) => h("tr", attrs ? attrs(row) : null, columns.map((c) =>
          h("td", { class: [c.num ? "num" : "", c.key || ""].join(" ").trim() || null },
            c.cell(row)))))
      : h("tr", null, h("td", { class: "empty", colspan: columns.length }, empty || "Nothing yet.")));
    table.replaceChildren(head, body);
  }

  // -- overview -------------------------------------------------------------------------

  async function loadOverview() {
    const [overview, history] = await Promise.all([
      api("GET", "/overview"),
      api("GET", "/overview/history"),
    ]);
    const stats = [
      ["connections", "Connections", count(overview.connections)],
      ["queues", "Queues", count(overview.queues)],
      ["channels", "Channels", count(overview.channels)],
      ["users", "Users", count(overview.users)],
      ["in", "Published / s", perSecond(overview.rates.published_per_s)],
      ["out", "Delivered / s", perSecond(overview.rates.delivered_per_s)],
      ["queued", "Queued", bytes(overview.messages.queued_bytes)],
      ["memory", "Memory", bytes(overview.memory_bytes)],
      ["store", "Store on disk", overview.store_bytes === null ? "in memory" : bytes(overview.store_bytes)],
      ["uptime", "Up for", duration(overview.uptime_s)],
      ["version", "Version", overview.version],
    ];
    $("overview-cards").replaceChildren(...stats.map(([key, label, value]) =>
      h("dl", { class: "card stat", "data-stat": key }, h("dt", null, label), h("dd", null, value))));
    state.history = history.points;
    drawChart();
  }

  function niceCeiling(value) {
    const power = 10 ** Math.floor(Math.log10(value));
    // tops whose quarters (the grid lines) are round numbers too
    for (const step of [1, 2, 4, 6, 8, 10]) if (step * power >= value) return step * power;
    return 10 * power;
  }

  function drawChart() {
    const canvas = $("rate-chart");
    const width = canvas.clientWidth;
    const height = canvas.clientHeight;
    if (!width || !height) return;
    const ratio = window.devicePixelRatio || 1;
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
    const g = canvas.getContext("2d");
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, width, height);
    const style = getComputedStyle(canvas);
    const color = (name) => style.getPropertyValue(name).trim();

    const points = state.history;
    // times relative to the newest sample: the browser's clock may differ from the broker's
    const newest = points.length ? Date.parse(points[points.length - 1].at) : 0;
    const series = (key) => points.map((p) => [(Date.parse(p.at) - newest) / 1000, p[key]]);
    const published = series("published_per_s");
    const delivered = series("delivered_per_s");
    let top = 1;
    for (const [, v] of published.concat(delivered)) top = Math.max(top, v);
    top = niceCeiling(top);

    const pad = { left: 48, right: 14, top: 10, bottom: 24 };
    const plotWidth = width - pad.left - pad.right;
    const plotHeight = height - pad.top - pad.bottom;
    const x = (t) => pad.left + plotWidth * (1 + t / CHART_SPAN_S);
    const y = (v) => pad.top + plotHeight * (1 - v / top);

    g.font = `12px ${style.fontFamily}`;
    g.fillStyle = color("--muted");
    g.strokeStyle = color("--grid");
    g.lineWidth = 1;
    g.textAlign = "right";
    g.textBaseline = "middle";
    for (let i = 0; i <= 4; i++) {
      const value = (top * i) / 4;
      const at = Math.round(y(value)) + 0.5;
      g.beginPath();
      g.moveTo(pad.left, at);
      g.lineTo(width - pad.right, at);
      g.stroke();
      g.fillText(value >= 10 ? value.toFixed(0) : String(+value.toFixed(2)), pad.left - 8, at);
    }
    g.textAlign = "center";
    g.textBaseline = "top";
    const minuteStep = plotWidth < 320 ? 2 : 1;
    for (let minutes = 5; minutes >= 0; minutes -= 1) {
      if (minutes % minuteStep) continue;
      const label = minutes ? `-${minutes} min` : "now";
      g.fillText(label, Math.min(x(-minutes * 60), width - 16), height - pad.bottom + 6);
    }

    const plot = (data, name, dash) => {
      g.strokeStyle = color(name);
      g.setLineDash(dash);
      g.lineWidth = 2;
      g.lineJoin = "round";
      g.beginPath();
      let started = false;
      for (const [t, v] of data) {
        if (t < -CHART_SPAN_S) continue;
        if (started) g.lineTo(x(t), y(v));
        else g.moveTo(x(t), y(v));
        started = true;
      }
      g.stroke();
    };
    // delivered dashed on top: when every message goes straight out, the lines coincide
    plot(published, "--series-in", []);
    plot(delivered, "--series-out", [6, 4]);
  }

  // -- queues and channels --------------------------------------------------------------

  const KINDS = {
    queues: {
      noun: "queue",
      columns: [
        { title: "Depth", num: true, key: "depth", cell: (d) => count(d.depth) },
        { title: "In flight", num: true, key: "in-flight", cell: (d) => count(d.in_flight) },
        { title: "Consumers", num: true, key: "consumers", cell: (d) => count(d.consumers) },
      ],
      facts: (d) => [
        ["Depth", count(d.depth), "depth"],
        ["In flight", count(d.in_flight), "in-flight"],
        ["Consumers", count(d.consumers), "consumers"],
        ["In / s", perSecond(d.rates.published_per_s), "in"],
        ["Out / s", perSecond(d.rates.delivered_per_s), "out"],
        ["Owner", d.owner || "(deleted user)", "owner"],
        ["Durable", d.policy.durable ? "yes" : "no", "durable"],
      ],
    },
    channels: {
      noun: "channel",
      columns: [
        { title: "Subscribers", num: true, key: "subscribers", cell: (d) => count(d.subscribers) },
        {
          title: "Durable subs",
          num: true,
          key: "durables",
          cell: (d) => count(d.durable_subscriptions.length),
        },
      ],
      facts: (d) => [
        ["Subscribers", count(d.subscribers), "subscribers"],
        ["In / s", perSecond(d.rates.published_per_s), "in"],
        ["Out / s", perSecond(d.rates.delivered_per_s), "out"],
        ["Owner", d.owner || "(deleted user)", "owner"],
      ],
    },
  };

  const singular = (kind) => KINDS[kind].noun;
  const mayManage = (d) => state.me.role === "admin" || d.owner === state.me.username;

  async function loadDestinations(kind) {
    const list = await api("GET", "/" + kind);
    state.lists[kind] = list;
    const selected = state.selected[kind];
    const columns = [
      {
        title: "Name",
        cell: (d) =>
          h("button", { type: "button", class: "link", onclick: () => select(kind, d.name) }, d.name),
      },
      ...KINDS[kind].columns,
      { title: "In / s", num: true, key: "in", cell: (d) => perSecond(d.rates.published_per_s) },
      { title: "Out / s", num: true, key: "out", cell: (d) => perSecond(d.rates.delivered_per_s) },
      { title: "Owner", cell: (d) => d.owner || "—" },
      { title: "Key", cell: (d) => (d.protected ? h("span", { class: "tag" }, "key") : "") },
    ];
    fillTable($(singular(kind) + "-table"), columns, list, {
      attrs: (d) => ({ "data-name": d.name, class: d.name === selected ? "selected" : null }),
      empty: `No ${kind} yet.`,
    });
    const current = list.find((d) => d.name === selected);
    if (selected !== null && !current) closeDetail(kind);
    else if (current) fillFacts(kind, current);
  }

  async function create(kind, event) {
    event.preventDefault();
    const noun = singular(kind);
    const form = event.currentTarget;
    const body = { name: $(noun + "-name").value.trim() };
    const key = $(noun + "-key").value;
    if (key) body.access_key = key;
    if (kind === "queues") body.policy = queuePolicy();
    await act(form.querySelector("button[type=submit]"), async () => {
      await api("POST", "/" + kind, { body });
      form.reset();
      notify(`Created ${noun} ${body.name}.`);
      await loadDestinations(kind);
      select(kind, body.name);
    });
  }

  function queuePolicy() {
    const policy = { durable: $("queue-durable").checked };
    const number = (id) => ($(id).value === "" ? null : Number($(id).value));
    const maxLength = number("queue-max-length");
    const ttl = number("queue-ttl");
    const maxDeliveries = number("queue-max-deliveries");
    const deadLetters = $("queue-dlq").value.trim();
    if (maxLength !== null) policy.max_length = maxLength;
    if (ttl !== null) policy.message_ttl_ms = ttl;
    if (maxDeliveries !== null) policy.max_deliveries = maxDeliveries;
    if (deadLetters) policy.dead_letter_queue = deadLetters;
    return policy;
  }

  function select(kind, name) {
    state.selected[kind] = name;
    const destination = state.lists[kind].find((d) => d.name === name);
    if (!destination) return closeDetail(kind);
    for (const row of $(singular(kind) + "-table").querySelectorAll("tbody tr")) {
      row.classList.toggle("selected", row.dataset.name === name);
    }
    renderDetail(kind, destination);
  }

  function closeDetail(kind) {
    state.selected[kind] = null;
    const panel = $(singular(kind) + "-detail");
    panel.hidden = true;
    panel.replaceChildren();
    panel.parentElement.classList.remove("open");
    for (const row of $(singular(kind) + "-table").querySelectorAll("tr.selected")) {
      row.classList.remove("selected");
    }
  }

  function fillFacts(kind, destination) {
    const facts = $(singular(kind) + "-detail").querySelector(".facts");
    if (!facts) return;
    facts.replaceChildren(...KINDS[kind].facts(destination).map(([label, value, key]) =>
      h("div", { "data-fact": key }, h("dt", null, label), h("dd", null, value))));
  }

  function renderDetail(kind, d) {
    const noun = singular(kind);
    const panel = $(noun + "-detail");
    const keyInput = d.protected && !mayManage(d)
      ? h("input", {
          type: "password",
          class: "access-key",
          placeholder: "access key",
          autocomplete: "off",
          maxlength: 1024,
        })
      : null;
    const key = () => (keyInput ? keyInput.value : "");

    const bodyInput = h("textarea", { rows: 3, class: "publish-body", "aria-label": "Message body" });
    const headersInput = h("textarea", {
      rows: 1, class: "publish-headers", "aria-label": "Headers",
      placeholder: "headers, one per line: name: value",
    });
    const publishForm = h("form", { class: "publish" },
      h("fieldset", null, h("legend", null, "Publish a test message"),
        bodyInput, headersInput,
        h("div", { class: "row" }, h("button", { type: "submit", class: "primary" }, "Publish"))));
    publishForm.addEventListener("submit", (event) => {
      event.preventDefault();
      act(publishForm.querySelector("button"), () => publish(kind, d.name, bodyInput, headersInput, key()));
    });

    const parts = [
      h("div", { class: "detail-head" },
        h("h3", null, `${noun[0].toUpperCase()}${noun.slice(1)} `, h("span", { class: "detail-name" }, d.name)),
        h("button", { type: "button", class: "link", onclick: () => closeDetail(kind) }, "Close")),
      h("p", { class: "muted" }, d.address, d.protected ? " · protected by an access key" : ""),
      h("dl", { class: "facts" }),
      keyInput && h("label", null, "Access key for publishing and reading ", keyInput),
      publishForm,
    ];

    if (kind === "queues") {
      const limit = h("input", {
        type: "number", min: 1, max: 100, value: 10, class: "peek-limit", "aria-label": "How many",
      });
      const results = h("ul", { class: "messages", "aria-live": "polite" });
      const peekButton = h("button", { type: "submit" }, "Peek");
      const peekForm = h("form", { class: "peek" },
        h("fieldset", null, h("legend", null, "Peek at the head (nothing is consumed)"),
          h("div", { class: "row" }, limit, peekButton), results));
      peekForm.addEventListener("submit", (event) => {
        event.preventDefault();
        act(peekButton, () => peek(d.name, Number(limit.value) || 10, key(), results));
      });
      parts.push(peekForm);
    } else if (d.durable_subscriptions.length) {
      parts.push(h("div", null, h("h4", null, "Durable subscriptions"),
        h("ul", null, d.durable_subscriptions.map((s) =>
          h("li", null, `${s.name} (${s.owner || "deleted user"}): ${count(s.backlog)} waiting`)))));
    }

    if (mayManage(d)) {
      const actions = h("div", { class: "row" });
      if (kind === "queues") {
        const purge = h("button", { type: "button", class: "purge" }, "Purge");
        purge.addEventListener("click", () => act(purge, () => purgeQueue(d.name)));
        actions.append(purge);
      }
      const remove = h("button", { type: "button", class: "danger delete" }, `Delete ${noun}`);
      remove.addEventListener("click", () => act(remove, () => removeDestination(kind, d.name)));
      actions.append(remove);
      parts.push(actions);
    }

    panel.replaceChildren(...parts.filter(Boolean));
    panel.hidden = false;
    panel.parentElement.classList.add("open");
    fillFacts(kind, d);
  }

  function parseHeaders(text) {
    const headers = {};
    for (const line of text.split("\n")) {
      if (!line.trim()) continue;
      const colon = line.indexOf(":");
      if (colon < 1) throw new Error(`A header line needs "name: value": ${line.slice(0, 40)}`);
      headers[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    }
    return headers;
  }

  async function publish(kind, name, bodyInput, headersInput, key) {
    const headers = parseHeaders(headersInput.value);
    const sent = await api("POST", path(kind, name, "messages"), {
      body: { body: bodyInput.value, headers },
      key,
    });
    notify(`Published ${sent.message_id} to ${name}.`);
    await loadDestinations(kind);
  }

  async function peek(name, limit, key, list) {
    const shown = await api("GET", `${path("queues", name, "messages")}?limit=${limit}`, { key });
    list.replaceChildren(...(shown.messages.length
      ? shown.messages.map(renderMessage)
      : [h("li", { class: "muted" }, "No message is waiting.")]));
  }

  function renderMessage(m) {
    const headers = Object.entries(m.headers);
    return h("li", { class: "message", "data-id": m.message_id },
      h("div", { class: "message-meta" },
        h("span", null, m.message_id),
        m.redelivered && h("span", { class: "tag" }, "redelivered")),
      headers.length > 0 && h("dl", { class: "message-headers" },
        headers.map(([name, value]) => [h("dt", null, name), h("dd", null, value)])),
      m.body !== null
        ? h("pre", { class: "body" }, m.body)
        : h("pre", { class: "body binary", title: "binary body, shown as base64" }, m.body_base64));
  }

  async function purgeQueue(name) {
    if (!confirm(`Purge queue ${name}? Its waiting messages are dropped.`)) return;
    const result = await api("POST", path("queues", name, "purge"));
    notify(`Purged ${count(result.purged)} messages from ${name}.`);
    await loadDestinations("queues");
  }

  async function removeDestination(kind, name) {
    const noun = singular(kind);
    if (!confirm(`Delete ${noun} ${name}? Its messages are dropped and its consumers disconnected.`)) return;
    await api("DELETE", path(kind, name));
    closeDetail(kind);
    notify(`Deleted ${noun} ${name}.`);
    await loadDestinations(kind);
  }

  // -- connections ----------------------------------------------------------------------

  async function loadConnections() {
    const list = await api("GET", "/connections");
    const admin = state.me.role === "admin";
    $("connections-scope").textContent = admin
      ? "Every open STOMP connection."
      : "Your open STOMP connections.";
    const columns = [
      { title: "Id", cell: (c) => c.id },
      { title: "User", cell: (c) => c.user || "(logging in)" },
      { title: "From", cell: (c) => c.peer },
      { title: "Protocol", cell: (c) => c.protocol },
      { title: "Since", cell: (c) => when(c.connected_at) },
      { title: "Subscriptions", num: true, cell: (c) => count(c.subscriptions) },
      { title: "Published", num: true, cell: (c) => count(c.published) },
      { title: "Delivered", num: true, cell: (c) => count(c.delivered) },
    ];
    if (admin) {
      columns.push({
        title: "",
        cell: (c) => {
          const button = h("button", { type: "button", class: "danger close" }, "Close");
          button.addEventListener("click", () => act(button, () => closeConnection(c)));
          return button;
        },
      });
    }
    fillTable($("connection-table"), columns, list, {
      attrs: (c) => ({ "data-id": c.id }),
      empty: "No open connections.",
    });
  }

  async function closeConnection(c) {
    if (!confirm(`Close connection ${c.id} of ${c.user || "a client"} from ${c.peer}?`)) return;
    await api("DELETE", path("connections", c.id));
    notify(`Closed connection ${c.id}.`);
    await loadConnections();
  }

  // -- users ----------------------------------------------------------------------------

  async function loadUsers() {
    const list = await api("GET", "/users");
    const columns = [
      {
        title: "Name",
        cell: (u) => [u.username, u.username === state.me.username && h("span", { class: "tag" }, "you")],
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
          if (u.username === state.me.username) return ""; // not your own account from here
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

  document.addEventListener("DOMContentLoaded", start);
})();
