// treadle dashboard: live refresh of the parts marked data-refresh, and the step slider.
// Hand-written, no dependencies; loaded from the server (the page allows no inline script).
(function () {
  "use strict";

  function poll(el) {
    var url = el.getAttribute("data-refresh");
    var every = 2000;
    var last = null;
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, { credentials: "same-origin" })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.text(); })
        .then(function (html) {
          if (html !== last) {
            last = html;
            el.innerHTML = html;  // rendered and escaped by the server's templates
          }
          if (el.querySelector("[data-finished]") && el.hasAttribute("data-reload-when-done")) {
            window.location.reload();
            return;
          }
          setTimeout(tick, every);
        })
        .catch(function () { setTimeout(tick, every * 2); });
    }
    setTimeout(tick, every);
  }

  function slider(input) {
    var out = document.getElementById(input.getAttribute("data-output"));
    var offset = parseInt(input.getAttribute("data-offset") || "0", 10);
    input.addEventListener("input", function () {
      if (out) { out.textContent = String(parseInt(input.value, 10) + offset); }
    });
    input.addEventListener("change", function () { input.form.submit(); });
  }

  document.querySelectorAll("[data-refresh]").forEach(poll);
  document.querySelectorAll("input[data-autosubmit]").forEach(slider);
})();
