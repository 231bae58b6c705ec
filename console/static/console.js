// Console-wide behaviour: htmx sends the CSRF token with every request, and errors htmx does not swap
// (403, 404, 409…) are shown in the flash area instead of being swallowed.
(function () {
  "use strict";
  document.addEventListener("htmx:configRequest", (ev) => {
    const token = document.body.dataset.csrf;
    if (token) ev.detail.headers["X-CSRF-Token"] = token;
  });
  document.addEventListener("htmx:responseError", (ev) => {
    const flash = document.getElementById("flash");
    const doc = new DOMParser().parseFromString(ev.detail.xhr.responseText || "", "text/html");
    const msg = doc.querySelector(".error");
    flash.textContent = msg ? msg.textContent : `请求失败 (${ev.detail.xhr.status})`;
    flash.className = "shown";
  });
  document.addEventListener("htmx:beforeRequest", () => {
    const flash = document.getElementById("flash");
    if (flash) { flash.textContent = ""; flash.className = ""; }
  });
})();
