/* huren pages: small helpers of our own, no third-party code. */
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  window.huren = {
    csrf: meta ? meta.getAttribute("content") : "",
  };
  // forms marked data-confirm ask before submitting
  document.addEventListener("submit", function (ev) {
    var f = ev.target;
    if (f && f.dataset && f.dataset.confirm && !window.confirm(f.dataset.confirm)) ev.preventDefault();
  });
  // links marked data-back go back in the history (no javascript: URL: the pages' CSP forbids it)
  document.addEventListener("click", function (ev) {
    var a = ev.target && ev.target.closest ? ev.target.closest("a[data-back]") : null;
    if (a && window.history.length > 1) { ev.preventDefault(); window.history.back(); }
  });
})();
