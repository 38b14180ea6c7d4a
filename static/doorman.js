// doorman's pages: the password form on /login; on /, sign-out, the API
// helper, and the list of the user's browser sessions with a button to end each.
// Served as a file so the pages' Content-Security-Policy needs no inline code.
"use strict";

// Only an http(s) URL is ever navigated to: a provider's logout URL of any
// other scheme (javascript:, data:) is ignored.
function safeTarget(text, fallback) {
  try {
    const url = new URL(text, window.location.origin);
    if (url.protocol === "https:" || url.protocol === "http:") {
      return url.href;
    }
  } catch (_) {
    // not a URL
  }
  return fallback;
}

const form = document.getElementById("password-form");
if (form) {
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("error");
    error.textContent = "";
    const response = await fetch("/me/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify({
        username: document.getElementById("username").value,
        password: document.getElementById("password").value,
      }),
    });
    if (response.ok) {
      window.location.assign(safeTarget(form.dataset.next || "/", "/"));
    } else {
      const body = await response.json().catch(() => ({}));
      error.textContent = body.message || "Sign-in failed.";
    }
  });
}

const csrf = () => (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";

// Calls doorman's API with the cookies. A 401 `access_expired` (the access
// cookie ran out while the session lives) is answered by POST /me/refresh
// and one retry; any other 401 (`invalid_session`, `sign_in_again`) means
// the session is over: back to the sign-in page.
async function api(path, options = {}) {
  const send = () =>
    fetch(path, { credentials: "same-origin", ...options, headers: { "X-CSRFToken": csrf(), ...(options.headers || {}) } });
  let response = await send();
  if (response.status === 401) {
    const body = await response.clone().json().catch(() => ({}));
    if (body.error === "access_expired") {
      const refreshed = await fetch("/me/refresh", { method: "POST", credentials: "same-origin", headers: { "X-CSRFToken": csrf() } });
      if (refreshed.ok) response = await send();
    }
  }
  if (response.status === 401) window.location.assign("/login");
  return response;
}

const signOut = document.getElementById("sign-out");
if (signOut) {
  window.doormanApi = api;
  // Coming back to the page: still signed in? (refreshes the access cookie when due)
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") api("/me");
  });
  signOut.addEventListener("click", async () => {
    const response = await fetch("/me/logout", { method: "POST", headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    window.location.assign(safeTarget(body.logout_url || "/login", "/login"));
  });
}

const sessions = document.getElementById("sessions");
if (sessions) {
  sessions.addEventListener("click", async (event) => {
    const button = event.target.closest("button.end");
    if (!button) return;
    const item = button.closest("li");
    button.disabled = true;
    const response = await api("/me/sessions/" + encodeURIComponent(button.dataset.session), { method: "DELETE" });
    const error = document.getElementById("sessions-error");
    if (response.status === 204 || response.status === 404) {
      if (item.dataset.current === "true") {
        window.location.assign("/login");
        return;
      }
      item.remove();
      error.textContent = "";
    } else if (response.status !== 401) {
      const body = await response.json().catch(() => ({}));
      error.textContent = body.message || "The session could not be ended.";
      button.disabled = false;
    }
  });
}
