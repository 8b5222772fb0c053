// The annotator workspace: keyboard flow, the item fetched ahead, submits that are never lost.
//
// Without JavaScript every action is a plain form post. With it, an action shows the item
// fetched ahead at once and sends the post in the background; the answer is the next item to
// fetch ahead. Posts go one at a time, in order, and a failed one is retried with the same
// submission key, so the server stores it once.
(() => {
  "use strict";
  const workspace = document.getElementById("workspace");
  if (!workspace) return;
  const current = document.getElementById("current");
  const ahead = document.getElementById("ahead");
  const status = document.getElementById("status");
  const guidelines = document.getElementById("guidelines");
  const csrf = document.querySelector("[name=csrfmiddlewaretoken]").value;
  let chain = Promise.resolve();

  const item = () => current.querySelector("article.item");
  const aheadItem = () => ahead.content.querySelector("article.item");
  const say = (text) => { status.textContent = text; };
  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  async function post(url, data, attempt = 0) {
    try {
      const response = await fetch(url, {
        method: "POST", body: data, credentials: "same-origin",
        headers: { "X-CSRFToken": csrf, "X-Parley-Fragment": "1" },
      });
      if (response.status >= 500) throw new Error(`server error ${response.status}`);
      return response;
    } catch (error) {
      if (attempt >= 10) throw error;
      say("Connection problem: retrying…");
      await sleep(Math.min(300 * 2 ** attempt, 5000));
      return post(url, data, attempt + 1);
    }
  }

  function showAhead() {
    current.replaceChildren(ahead.content.cloneNode(true));
    ahead.content.replaceChildren();
    if (!item()) current.innerHTML = '<p class="empty" id="queue-loading">Loading the next item…</p>';
    const turn = current.querySelector(".turn.current");
    if (turn) turn.scrollIntoView({ block: "center" });
  }

  function receive(html) {
    if (item()) {
      ahead.innerHTML = html;
    } else {
      current.innerHTML = html;  // nothing was ahead: this one is shown now
      const turn = current.querySelector(".turn.current");
      if (turn) turn.scrollIntoView({ block: "center" });
    }
  }

  function act(kind, fields, done) {
    const el = item();
    if (!el) return;
    const url = el.dataset[kind];
    const data = new FormData();
    data.append("submission_key", el.dataset.key);
    for (const [name, value] of Object.entries(fields)) data.append(name, value);
    showAhead();
    chain = chain.then(async () => {
      for (const shown of [item(), aheadItem()]) if (shown) data.append("showing", shown.dataset.item);
      try {
        const response = await post(url, data);
        if (response.ok) {
          document.getElementById("done-today").textContent = response.headers.get("X-Parley-Done-Today");
          document.getElementById("left").textContent = response.headers.get("X-Parley-Left");
          receive(await response.text());
          say(done);
        } else {
          say(`Not saved: ${await response.text()}`);
        }
      } catch (error) {
        // The server may have stored it before the answer was lost: never claim it was not.
        say(`No confirmation from the server (${error.message}). Your answer may be saved already: reload the page to check; sending it again is safe.`);
      }
    });
  }

  async function undo() {
    say("Undoing…");
    await chain;
    const response = await post(workspace.dataset.undo, new FormData());
    if (response.ok) {
      window.location.assign((await response.json()).location);
    } else {
      say(await response.text());
    }
  }

  function heldIds() {
    return [item(), aheadItem()].filter(Boolean).map((el) => el.dataset.item);
  }

  function ids() {
    const data = new FormData();
    data.append("csrfmiddlewaretoken", csrf);
    for (const id of heldIds()) data.append("item", id);
    return data;
  }

  // Keep the claims while the page is visible; let them go soon after it is left.
  setInterval(() => {
    if (document.visibilityState === "visible" && heldIds().length) {
      fetch(workspace.dataset.renew, { method: "POST", body: ids(), credentials: "same-origin" });
    }
  }, Number(workspace.dataset.renewEvery) * 1000);
  window.addEventListener("pagehide", () => navigator.sendBeacon(workspace.dataset.release, ids()));

  // A long dialogue shows a window of turns; its links swap the whole dialogue in.
  workspace.addEventListener("click", async (event) => {
    const link = event.target.closest("a.show-dialogue");
    if (!link) return;
    event.preventDefault();
    const response = await fetch(link.href, { headers: { "X-Parley-Fragment": "1" }, credentials: "same-origin" });
    if (!response.ok) { window.location.assign(link.href); return; }
    const list = link.closest("ol.dialogue");
    list.outerHTML = await response.text();
    const turn = current.querySelector(".turn.current");
    if (turn) turn.scrollIntoView({ block: "center" });
  });

  // Mouse and keyboard users go through the same paths.
  workspace.addEventListener("submit", (event) => {
    const form = event.target;
    if (form.classList.contains("undo-form")) {
      event.preventDefault();
      undo();
    } else if (form.classList.contains("labels") && event.submitter) {
      event.preventDefault();
      act("submit", { label: event.submitter.value }, `Saved “${event.submitter.value}”. U undoes it.`);
    } else if (form.classList.contains("skip-form")) {
      event.preventDefault();
      act("skip", {}, "Skipped.");
    } else if (form.classList.contains("flag-form")) {
      event.preventDefault();
      const box = form.querySelector(".flag-comment");
      if (box.hidden) {
        openFlag(form);  // the first press asks for the comment
      } else {
        act("flag", { comment: form.elements.comment.value }, "Flagged for review.");
      }
    }
  });

  // W: why this item is in front (its trust and the signals behind it), fetched once.
  async function why(el) {
    const box = el.querySelector("section.why");
    if (!box.hidden) { box.hidden = true; return; }
    if (!box.childElementCount) {
      const response = await fetch(el.dataset.why, { headers: { "X-Parley-Fragment": "1" }, credentials: "same-origin" });
      box.innerHTML = response.ok ? await response.text() : "<p>The reasons could not be loaded.</p>";
    }
    box.hidden = false;
  }

  // The flag's comment box stays out of the way until a flag is being written.
  function openFlag(form) {
    const box = form.querySelector(".flag-comment");
    box.hidden = false;
    form.elements.comment.focus();
  }

  function closeFlag(textarea) {
    textarea.value = "";
    textarea.closest(".flag-comment").hidden = true;
    textarea.blur();
  }

  document.addEventListener("keydown", (event) => {
    if (event.altKey || event.metaKey) return;
    const target = event.target;
    if (target instanceof HTMLTextAreaElement) {
      if (event.key === "Escape") {
        if (target.closest(".flag-comment")) closeFlag(target);
        else target.blur();
      }
      if (event.key === "Enter" && event.ctrlKey) {
        event.preventDefault();
        target.form.requestSubmit();
      }
      return;
    }
    if (event.ctrlKey || target instanceof HTMLInputElement || target instanceof HTMLSelectElement) return;
    const el = item();
    const key = event.key.toLowerCase();
    if (key === "u") { event.preventDefault(); undo(); return; }
    if (key === "g" || key === "?") { event.preventDefault(); guidelines.open = !guidelines.open; return; }
    if (!el) return;
    if (event.key === "Enter" && target.tagName !== "BUTTON" && target.tagName !== "A" && target.tagName !== "SUMMARY") {
      if (el.dataset.suggestion) {
        event.preventDefault();
        act("submit", { label: el.dataset.suggestion }, `Accepted “${el.dataset.suggestion}”. U undoes it.`);
      }
      return;
    }
    if (key === "s") { event.preventDefault(); act("skip", {}, "Skipped."); return; }
    if (key === "f") { event.preventDefault(); openFlag(el.querySelector(".flag-form")); return; }
    if (key === "w") { event.preventDefault(); why(el); return; }
    const button = el.querySelector(`.labels button[data-key="${CSS.escape(key)}"]`);
    if (button) {
      event.preventDefault();
      act("submit", { label: button.value }, `Saved “${button.value}”. U undoes it.`);
    }
  });
})();
