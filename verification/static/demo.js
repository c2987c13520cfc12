// The demo page: start a verification, show its countdown and attempts, check codes, follow the status.
// It talks only to /demo/api/..., which calls the service on the server: the page never holds an API key.
"use strict";

(() => {
  const root = document.getElementById("demo");
  const api = root.dataset.api;
  const $ = (id) => document.getElementById(id);
  const el = {
    status: $("status"), phoneForm: $("phone-form"), phone: $("phone"), phoneError: $("phone-error"),
    send: $("send"), sentLabel: $("sent-label"), masked: $("masked"), countdown: $("countdown"),
    attempts: $("attempts"), codeForm: $("code-form"), code: $("code"), codeHint: $("code-hint"),
    codeError: $("code-error"), feedback: $("feedback"), verify: $("verify"), cancel: $("cancel"),
    steps: { start: $("step-phone"), pending: $("step-code"), done: $("step-done") },
    outcome: $("outcome"), doneTitle: $("done-title"), doneText: $("done-text"), again: $("again"),
  };
  const POLL_MS = 1000;
  const STORED = "demo-verification";
  const TROUBLE = "Connection trouble; still trying.";

  const OUTCOMES = {
    approved: ["Phone number verified", (v) => `${v.phone} is confirmed as yours.`],
    max_attempts_reached: ["Too many wrong codes",
      () => "No attempts are left for this code. Start again to get a new one."],
    expired: ["The code expired", () => "The time to enter it ran out. Start again to get a new code."],
    canceled: ["Verification canceled",
      () => "It was canceled, or replaced by a newer one for the same number. Start again to get a new code."],
    failed: ["We could not send the code", (v) => "The SMS could not be sent to this number"
      + (v.failure && v.failure.twilioErrorCode ? ` (Twilio error ${v.failure.twilioErrorCode})` : "")
      + ". Check the number and start again."],
  };

  let current = null;  // the verification as last seen
  let skew = 0;  // server clock minus this device's clock, in ms
  let pollTimer = 0;
  let deadlinePolled = false;
  let busy = false;

  async function call(method, url, body) {
    const options = { method, cache: "no-store", headers: { Accept: "application/json" } };
    if (body !== undefined) {
      options.headers["Content-Type"] = "application/json";
      options.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(url, options);
    } catch (error) {
      return { ok: false, status: 0, data: null };
    }
    let data = null;
    try {
      data = await response.json();
    } catch (error) {
      data = null;
    }
    return { ok: response.ok, status: response.status, data };
  }

  function messageOf(result) {
    if (result.status === 0) return "The server cannot be reached. Check your connection and try again.";
    const message = result.data && result.data.error && result.data.error.message;
    if (!message) return `Something went wrong (HTTP ${result.status}). Try again.`;
    const sentence = message.charAt(0).toUpperCase() + message.slice(1);
    return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
  }

  function show(step) {
    for (const [name, section] of Object.entries(el.steps)) section.hidden = name !== step;
  }

  function announce(text) {
    if (el.status.textContent !== text) el.status.textContent = text;
  }

  function fieldError(input, box, text) {
    box.textContent = text;
    box.hidden = !text;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function setFeedback(text) {
    el.feedback.textContent = text;
    el.feedback.hidden = !text;
  }

  function setBusy(value) {
    busy = value;
    root.setAttribute("aria-busy", String(value));
    for (const button of [el.send, el.verify, el.cancel]) button.disabled = value;
  }

  function plural(n, word) {
    return `${n} ${word}${n === 1 ? "" : "s"}`;
  }

  function remember(v) {
    try {
      if (v && v.status === "pending") sessionStorage.setItem(STORED, v.id);
      else sessionStorage.removeItem(STORED);
    } catch (error) { /* storage off: the page still works, it only forgets on reload */ }
  }

  // Every answer about the verification comes through here; older news never overwrites newer.
  function render(v) {
    if (current && current.id === v.id) {
      if (current.status !== "pending") return;
      if (v.status === "pending" && v.updatedAt < current.updatedAt) return;
    }
    if (!current || current.id !== v.id) deadlinePolled = false;
    current = v;
    skew = Date.parse(v.serverTime) - Date.now();
    root.dataset.state = v.status;
    remember(v);
    if (v.status === "pending") renderPending(v);
    else renderDone(v);
  }

  function renderPending(v) {
    const sent = v.sendStatus === "sent";
    el.sentLabel.textContent = sent ? "Code sent to" : "Sending a code to";
    el.masked.textContent = v.phone;
    el.attempts.textContent = String(v.attemptsRemaining);
    el.codeHint.textContent = `The ${v.codeLength} digits from the SMS.`;
    el.code.maxLength = v.codeLength;
    if (sent) announce(`Code sent to ${v.phone}.`);
    tick();
    show("pending");
    schedulePoll(POLL_MS);
  }

  function renderDone(v) {
    clearTimeout(pollTimer);
    const [title, text] = OUTCOMES[v.status] || [`Verification ${v.status}`, () => ""];
    el.outcome.className = `outcome outcome--${v.status === "approved" ? "good" : "bad"}`;
    el.doneTitle.textContent = title;
    el.doneText.textContent = text(v);
    const wasShown = !el.steps.done.hidden;
    show("done");
    // The code field just vanished: focus moves to the outcome, which a screen reader then reads.
    if (!wasShown) el.doneTitle.focus();
  }

  function tick() {
    if (!current || current.status !== "pending") return;
    const left = Math.max(0, Date.parse(current.expiresAt) - (Date.now() + skew));
    const seconds = Math.ceil(left / 1000);
    el.countdown.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    el.countdown.classList.toggle("soon", seconds <= 10);
    if (left === 0 && !deadlinePolled) {
      // The deadline has passed here: ask now rather than at the next poll.
      deadlinePolled = true;
      schedulePoll(0);
    }
  }

  function schedulePoll(delay) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, delay);
  }

  async function poll() {
    if (!current || current.status !== "pending") return;
    const id = current.id;
    const result = await call("GET", `${api}/${encodeURIComponent(id)}`);
    if (!current || current.id !== id) return;  // started again meanwhile
    if (result.ok) {
      if (el.status.textContent === TROUBLE) announce("");
      render(result.data);
    } else if (result.status === 404) {
      return gone();
    } else {
      announce(TROUBLE);
    }
    if (current && current.status === "pending") schedulePoll(POLL_MS);
  }

  function gone() {
    startAgain();
    fieldError(el.phone, el.phoneError, "That verification no longer exists. Start again.");
  }

  function startAgain() {
    clearTimeout(pollTimer);
    current = null;
    remember(null);
    root.dataset.state = "start";
    el.code.value = "";
    fieldError(el.code, el.codeError, "");
    setFeedback("");
    announce("");
    show("start");
    el.phone.focus();
    el.phone.select();
  }

  el.phoneForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy) return;
    const phone = el.phone.value.trim();
    if (!phone) {
      fieldError(el.phone, el.phoneError, "Enter your phone number, with the country code.");
      el.phone.focus();
      return;
    }
    fieldError(el.phone, el.phoneError, "");
    setBusy(true);
    const result = await call("POST", api, { phone });
    setBusy(false);
    if (result.status !== 202) {
      fieldError(el.phone, el.phoneError, messageOf(result));
      el.phone.focus();
      return;
    }
    current = null;
    el.code.value = "";
    fieldError(el.code, el.codeError, "");
    setFeedback("");
    render(result.data);
    el.code.focus();
  });

  el.codeForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (busy || !current || current.status !== "pending") return;
    const code = el.code.value.replace(/\s+/g, "");
    // A malformed code is refused here, before any request, so it can never cost an attempt.
    if (!new RegExp(`^[0-9]{${current.codeLength}}$`).test(code)) {
      fieldError(el.code, el.codeError, `Enter the ${current.codeLength}-digit code, digits 0–9 only.`);
      el.code.focus();
      return;
    }
    fieldError(el.code, el.codeError, "");
    setBusy(true);
    const id = current.id;
    const result = await call("POST", `${api}/${encodeURIComponent(id)}/check`, { code });
    setBusy(false);
    if (!current || current.id !== id) return;
    if (result.ok) {
      render(result.data);
      if (!result.data.approved && result.data.status === "pending") {
        setFeedback(`Wrong code. ${plural(result.data.attemptsRemaining, "attempt")} left.`);
        el.code.value = "";
        el.code.focus();
      }
    } else if (result.status === 400) {
      fieldError(el.code, el.codeError, messageOf(result));
      el.code.focus();
    } else if (result.status === 409) {
      schedulePoll(0);  // it finished meanwhile; the poll shows how
    } else if (result.status === 404) {
      gone();
    } else {
      setFeedback(messageOf(result));
    }
  });

  el.cancel.addEventListener("click", async () => {
    if (busy || !current) return;
    setBusy(true);
    const id = current.id;
    const result = await call("POST", `${api}/${encodeURIComponent(id)}/cancel`, {});
    setBusy(false);
    if (!current || current.id !== id) return;
    if (result.ok) render(result.data);
    else if (result.status === 404) gone();
    else schedulePoll(0);
  });

  el.again.addEventListener("click", startAgain);
  el.code.addEventListener("input", () => fieldError(el.code, el.codeError, ""));
  el.phone.addEventListener("input", () => fieldError(el.phone, el.phoneError, ""));
  setInterval(tick, 250);

  // A reload keeps a pending verification on screen.
  let stored = null;
  try {
    stored = sessionStorage.getItem(STORED);
  } catch (error) { /* storage off */ }
  if (stored) {
    call("GET", `${api}/${encodeURIComponent(stored)}`).then((result) => {
      if (result.ok && result.data.status === "pending" && !current) {
        render(result.data);
        el.code.focus();
      } else if (!current) {
        remember(null);
      }
    });
  }
  el.phone.focus();
})();
