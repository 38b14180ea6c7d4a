// The signed-in page: sign out, and end any of the user's browser sessions.
// Served as a file so the page's Content-Security-Policy needs no inline script.
(function () {
  "use strict";

  function csrf() {
    return (document.cookie.match(/(?:^|; )csrftoken=([^;]*)/) || [])[1] || "";
  }

  // An unsafe call with the CSRF header; an access cookie that merely ran out
  // (401 access_expired) is refreshed once and the call retried.
  async function call(method, path) {
    const send = () => fetch(path, { method, headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" });
    let response = await send();
    if (response.status === 401) {
      const body = await response.clone().json().catch(() => ({}));
      if (body.error === "access_expired") {
        const refreshed = await fetch("/me/refresh", { method: "POST", headers: { "X-CSRFToken": csrf() }, credentials: "same-origin" });
        if (refreshed.ok) response = await send();
      }
    }
    return response;
  }

  document.getElementById("sign-out").addEventListener("click", async () => {
    const response = await call("POST", "/me/logout");
    const body = await response.json().catch(() => ({}));
    window.location.assign(body.logout_url || "/login");
  });

  document.getElementById("sessions").addEventListener("click", async (event) => {
    const button = event.target.closest("button.end");
    if (!button) return;
    const item = button.closest("li");
    const id = button.dataset.session;
    button.disabled = true;
    const response = await call("DELETE", "/me/sessions/" + encodeURIComponent(id));
    const error = document.getElementById("sessions-error");
    if (response.status === 204 || response.status === 404) {
      if (item.dataset.current === "true") {
        window.location.assign("/login");
        return;
      }
      item.remove();
      error.textContent = "";
    } else if (response.status === 401) {
      window.location.assign("/login");
    } else {
      const body = await response.json().catch(() => ({}));
      error.textContent = body.message || "The session could not be ended.";
      button.disabled = false;
    }
  });
})();
