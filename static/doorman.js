// doorman's pages: the password form on /login and sign-out on /.
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

const signOut = document.getElementById("sign-out");
if (signOut) {
  signOut.addEventListener("click", async () => {
    const csrf = (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
    const response = await fetch("/me/logout", { method: "POST", headers: { "X-CSRFToken": csrf }, credentials: "same-origin" });
    const body = await response.json().catch(() => ({}));
    window.location.assign(safeTarget(body.logout_url || "/login", "/login"));
  });
}
