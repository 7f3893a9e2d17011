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
})();
