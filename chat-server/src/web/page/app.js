// The page: conversations (everything, rooms, people), who is online, the messages, the composer.
// Everything that comes from the network is shown with textContent, never as HTML.

import { Session, seqOf } from "/session.js";

const $ = (id) => document.getElementById(id);
const HELP = [
  "/msg NAME[,NAME...] TEXT   to one person, or to several (a multicast)",
  "/join #room   /part [#room]   /rooms   /who [#room]   /history [N] [#room]",
  "plain text goes to the conversation you are in: everyone, a room, or a person",
];

const ui = {
  me: null,
  view: { kind: "all" }, // all | room {room} | person {name}
  rooms: new Set(),
  people: new Set(),
  dms: new Set(),
  messages: new Map(), // id -> message event, in order of seq
};

const session = new Session({
  event: (ev, info) => show(ev, info),
  state: (state, detail) => setState(state, detail),
  loginFailed: (message) => {
    $("login-error").textContent = message;
    $("login").hidden = false;
    setState("offline", "not connected");
  },
});

// ---------------------------------------------------------------- events

function show(ev, info) {
  switch (ev.type) {
    case "ready":
      ui.me = ev.name;
      $("me").textContent = `as ${ev.name}`;
      $("login").hidden = true;
      $("leave").hidden = false;
      for (const room of ev.rooms) ui.rooms.add(room);
      renderViews();
      session.request({ type: "who" });
      if (info.first) session.request({ type: "history", limit: 100 });
      break;
    case "message":
      addMessage(ev);
      break;
    case "history":
      for (const m of ev.messages) addMessage(m);
      break;
    case "joined":
    case "left":
      membership(ev);
      break;
    case "who":
      if (ev.room === null) {
        ui.people = new Set(ev.names);
        renderPeople();
      } else {
        system(`in ${ev.room}: ${ev.names.join(", ") || "nobody"}`);
      }
      break;
    case "peers":
      system(`online: ${ev.peers.map((p) => p.name).join(", ")}`);
      break;
    case "rooms":
      system(ev.rooms.length ? `rooms: ${ev.rooms.map((r) => `${r.name} (${r.members})`).join(", ")}` : "no rooms yet");
      break;
    case "sent":
      if (ev.queued.length) system(`${ev.queued.join(", ")} offline: they will get it when they return`);
      break;
    case "resumed":
      if (ev.missed) system(`reconnected: ${ev.missed} message(s) you missed follow`);
      break;
    case "notice":
      system(ev.text);
      break;
    case "error":
      system(`${ev.code}: ${ev.message}`, true);
      break;
    default:
      break;
  }
  renderPending();
}

function membership(ev) {
  if (ev.room === undefined) {
    if (ev.type === "joined") ui.people.add(ev.name);
    else ui.people.delete(ev.name);
    renderPeople();
    return;
  }
  if (ev.name === ui.me) {
    if (ev.type === "joined") {
      ui.rooms.add(ev.room);
      select({ kind: "room", room: ev.room });
    } else {
      ui.rooms.delete(ev.room);
      if (ui.view.kind === "room" && ui.view.room === ev.room) select({ kind: "all" });
      renderViews();
    }
  } else if (ui.view.kind === "room" && ui.view.room === ev.room) {
    system(`${ev.name} ${ev.type} ${ev.room}`);
  }
}

// ---------------------------------------------------------------- messages

function addMessage(m) {
  if (ui.messages.has(m.id)) return;
  ui.messages.set(m.id, m);
  if (m.kind === "unicast") {
    const other = m.from === ui.me ? m.to[0] : m.from;
    if (other !== ui.me && !ui.dms.has(other)) {
      ui.dms.add(other);
      renderViews();
    }
  }
  if (!visible(m)) return;
  const list = $("messages");
  const row = messageRow(m);
  // Server order: a history answer may bring older messages after newer ones.
  const seq = seqOf(m.id);
  let before = null;
  for (let el = list.lastElementChild; el; el = el.previousElementSibling) {
    if (el.dataset.seq === undefined) continue;
    if (Number(el.dataset.seq) < seq) break;
    before = el;
  }
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
  list.insertBefore(row, before);
  if (atBottom || !before) list.scrollTop = list.scrollHeight;
}

function visible(m) {
  const v = ui.view;
  if (v.kind === "all") return true;
  if (v.kind === "room") return m.room === v.room;
  return m.kind === "unicast" && ((m.from === v.name && m.to[0] === ui.me) || (m.from === ui.me && m.to[0] === v.name));
}

function messageRow(m) {
  const li = document.createElement("li");
  li.className = `msg ${m.kind === "unicast" || m.kind === "multicast" ? "private" : ""}`;
  li.dataset.id = m.id;
  li.dataset.seq = String(seqOf(m.id));
  li.dataset.from = m.from;
  li.dataset.kind = m.kind;
  const time = document.createElement("time");
  if (m.time) {
    time.dateTime = m.time;
    time.textContent = new Date(m.time).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    time.title = new Date(m.time).toLocaleString();
  }
  const from = document.createElement("span");
  from.className = "from";
  from.textContent = m.from;
  li.append(time, from);
  const to = target(m);
  if (to) {
    const span = document.createElement("span");
    span.className = "to";
    span.textContent = `→ ${to}`;
    li.append(span);
  }
  li.append(document.createTextNode(": "));
  const text = document.createElement("span");
  text.className = "text";
  text.textContent = m.text;
  li.append(text);
  return li;
}

function target(m) {
  switch (m.kind) {
    case "unicast":
      return m.to[0] === ui.me ? "you" : m.to[0];
    case "multicast":
      return `{${m.to.join(", ")}}`;
    case "room":
      return m.room;
    default:
      return null;
  }
}

function system(text, error = false) {
  const li = document.createElement("li");
  li.className = error ? "sys error" : "sys";
  li.textContent = `* ${text}`;
  const list = $("messages");
  list.append(li);
  list.scrollTop = list.scrollHeight;
}

// ---------------------------------------------------------------- the side bar

function select(view) {
  ui.view = view;
  renderViews();
  const list = $("messages");
  list.replaceChildren();
  const shown = [...ui.messages.values()].filter(visible).sort((a, b) => seqOf(a.id) - seqOf(b.id));
  for (const m of shown) list.append(messageRow(m));
  list.scrollTop = list.scrollHeight;
  $("target").textContent = view.kind === "room" ? `to ${view.room}` : view.kind === "person" ? `to ${view.name}` : "to everyone";
  $("text").focus();
}

function viewItem(label, view, current, onPart) {
  const li = document.createElement("li");
  const name = document.createElement("span");
  name.textContent = label;
  li.append(name);
  if (current) li.classList.add("current");
  li.addEventListener("click", () => select(view));
  if (onPart) {
    const part = document.createElement("button");
    part.className = "part";
    part.type = "button";
    part.title = `leave ${label}`;
    part.textContent = "×";
    part.addEventListener("click", (e) => {
      e.stopPropagation();
      onPart();
    });
    li.append(part);
  }
  return li;
}

function renderViews() {
  const v = ui.view;
  const items = [viewItem("All conversations", { kind: "all" }, v.kind === "all")];
  for (const room of [...ui.rooms].sort()) {
    const part = () => session.request({ type: "part", room });
    items.push(viewItem(room, { kind: "room", room }, v.kind === "room" && v.room === room, part));
  }
  for (const name of [...ui.dms].sort()) {
    items.push(viewItem(`@${name}`, { kind: "person", name }, v.kind === "person" && v.name === name));
  }
  $("views").replaceChildren(...items);
}

function renderPeople() {
  const items = [...ui.people].sort().map((name) => {
    const li = document.createElement("li");
    li.textContent = name;
    if (name === ui.me) {
      li.classList.add("me");
      li.textContent = `${name} (you)`;
    } else {
      li.addEventListener("click", () => {
        ui.dms.add(name);
        select({ kind: "person", name });
      });
    }
    return li;
  });
  $("people").replaceChildren(...items);
  $("online-count").textContent = `(${ui.people.size})`;
}

function renderPending() {
  const n = session.pending.size;
  $("pending").textContent = n ? `${n} sending…` : "";
}

function setState(state, detail) {
  const status = $("status");
  status.className = `status ${state}`;
  status.textContent = detail;
  document.body.dataset.state = state;
  if (state === "offline") {
    $("leave").hidden = true;
    $("login").hidden = false;
  }
  renderPending();
}

// ---------------------------------------------------------------- the composer

function submit(line) {
  if (!line.startsWith("/")) {
    const v = ui.view;
    const to = v.kind === "room" ? { room: v.room } : v.kind === "person" ? { to: [v.name] } : {};
    session.send(line, to);
    renderPending();
    return;
  }
  const [command, ...args] = line.slice(1).split(" ");
  const rest = line.slice(command.length + 2);
  switch (command) {
    case "msg":
    case "m": {
      const space = rest.indexOf(" ");
      if (space < 1) return system("usage: /msg NAME[,NAME...] TEXT", true);
      const names = rest.slice(0, space).split(",").filter((n) => n);
      session.send(rest.slice(space + 1), { to: names });
      renderPending();
      return;
    }
    case "join":
      return args[0] ? request({ type: "join", room: args[0] }) : system("usage: /join #room", true);
    case "part": {
      const room = args[0] || (ui.view.kind === "room" ? ui.view.room : null);
      return room ? request({ type: "part", room }) : system("usage: /part #room", true);
    }
    case "rooms":
      return request({ type: "rooms" });
    case "who":
      return request(args[0] ? { type: "who", room: args[0] } : { type: "who" });
    case "peers":
      return request({ type: "peers" });
    case "history": {
      const cmd = { type: "history" };
      for (const arg of args) {
        if (arg.startsWith("#")) cmd.room = arg;
        else if (/^\d+$/.test(arg)) cmd.limit = Number(arg);
      }
      return request(cmd);
    }
    case "help":
      return HELP.forEach((h) => system(h));
    default:
      return system(`unknown command /${command} (/help)`, true);
  }
}

function request(cmd) {
  if (!session.request(cmd)) system("not connected: try again once reconnected", true);
}

// ---------------------------------------------------------------- start

$("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const name = $("login-name").value.trim();
  const secret = $("login-secret").value;
  $("login-error").textContent = "";
  const credential = secret ? ($("login-is-token").checked ? { token: secret } : { password: secret }) : null;
  session.login(name, credential);
});

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const input = $("text");
  const line = input.value;
  if (!line.trim()) return;
  input.value = "";
  submit(line);
});

$("join-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const room = $("join-room").value.trim();
  if (!room) return;
  $("join-room").value = "";
  request({ type: "join", room: room.startsWith("#") ? room : `#${room}` });
});

$("leave").addEventListener("click", () => {
  session.leave();
  ui.messages.clear();
  ui.rooms.clear();
  ui.dms.clear();
  ui.people.clear();
  $("messages").replaceChildren();
  renderPeople();
  select({ kind: "all" });
});

select({ kind: "all" });
if (session.canResume()) {
  $("login-name").value = session.name;
  $("login").hidden = true;
  session.login(session.name, null);
} else {
  setState("offline", "not connected");
}
