// Progressive enhancement for the console: every page works without this
// script; with it, logs and events update live. No inline script is allowed
// (the Content-Security-Policy forbids it), so everything hooks in here.
"use strict";

// A task's logs, followed: the server streams new lines as they are written.
// A container that has only just started may not have written a line yet:
// its host answers 404 until it has, so the first minute is retried.
async function followLogs(pre, attempt = 0) {
  const status = document.getElementById(pre.dataset.status);
  const say = (text) => { if (status) status.textContent = text; };
  try {
    const resp = await fetch(pre.dataset.follow, { credentials: "same-origin" });
    if (resp.status === 404 && attempt < 60) {
      say("Waiting for the first log lines…");
      setTimeout(() => followLogs(pre, attempt + 1), 1000);
      return;
    }
    if (!resp.ok) {
      say("Logs are not available: " + resp.status + " " + (await resp.text()).slice(0, 300));
      return;
    }
    say("Following the logs live.");
    pre.textContent = "";
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
      pre.append(decoder.decode(value, { stream: true }));
      if (atBottom) pre.scrollTop = pre.scrollHeight;
    }
    say("The log stream ended.");
  } catch (e) {
    say("The log stream was interrupted: " + e);
  }
}

// The account's events, live, over the same server-sent event stream as the API's.
function followEvents(tbody) {
  const source = new EventSource(tbody.dataset.events);
  const add = (msg) => {
    let event;
    try { event = JSON.parse(msg.data); } catch (_) { return; }
    const row = document.createElement("tr");
    for (const text of [String(event.sequence), event.time, event.type, event.resource_id,
                        JSON.stringify(event.detail)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    row.className = "fresh";
    tbody.prepend(row);
  };
  const types = (tbody.dataset.types || "").split(",").filter(Boolean);
  for (const t of types) source.addEventListener(t, add);
  source.addEventListener("message", add);
  const status = document.getElementById(tbody.dataset.status);
  source.onopen = () => { if (status) status.textContent = "Live: new events appear at the top."; };
  source.onerror = () => { if (status) status.textContent = "Reconnecting to the event stream…"; };
}

// Buttons that ask before doing something that cannot be undone.
function confirmSubmit(form) {
  form.addEventListener("submit", (e) => {
    if (!window.confirm(form.dataset.confirm)) e.preventDefault();
  });
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("pre[data-follow]").forEach((pre) => followLogs(pre));
  document.querySelectorAll("tbody[data-events]").forEach(followEvents);
  document.querySelectorAll("form[data-confirm]").forEach(confirmSubmit);
});
