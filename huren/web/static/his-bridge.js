/* The way back to the HIS (issue 11 item 2): after the decision dialog is saved, or results are
 * cited, post the page's message (schema huren:decisions v1, see /ui/embed) to the page that
 * opened this one (its parent frame, or the window that opened it) — only to the HIS origins
 * the platform is configured to allow (HUREN_HIS_ORIGINS), one postMessage per origin with that
 * exact targetOrigin: the browser delivers it only when the opener is of that origin, never "*".
 * Also: "复制文本" copies the cited text. Our own code, no libraries. */
(function () {
  "use strict";
  var data = document.getElementById("his-message");
  if (data) {
    var msg = null;
    try { msg = JSON.parse(data.textContent); } catch (e) { msg = null; }
    var origins = (data.getAttribute("data-his-origins") || "").split(/\s+/).filter(Boolean);
    var targets = [];
    if (window.parent && window.parent !== window) targets.push(window.parent);
    if (window.opener && !window.opener.closed) targets.push(window.opener);
    if (msg) {
      targets.forEach(function (t) {
        origins.forEach(function (o) {
          try { t.postMessage(msg, o); } catch (e) { /* a malformed origin: skip */ }
        });
      });
    }
    // the page token's callback (an allowed HIS origin, checked when the token was minted): the
    // browser, inside the hospital's network, posts the same message; the page's CSP lets it
    // connect there only
    var callback = data.getAttribute("data-callback");
    var said = document.getElementById("his-callback");
    if (msg && callback && window.fetch) {
      window.fetch(callback, {
        method: "POST", mode: "cors", credentials: "omit", cache: "no-store", referrerPolicy: "no-referrer",
        headers: { "Content-Type": "application/json" }, body: JSON.stringify(msg)
      }).then(function (r) {
        if (said) said.textContent = r.ok ? "已发送到 HIS 回调地址" : "HIS 回调地址未接收（" + r.status + "），请在 HIS 中核对";
      }, function () {
        if (said) said.textContent = "未能连接 HIS 回调地址，请在 HIS 中核对";
      });
    }
    // say so only where the browser tells whom it went to (the frame's ancestors, Chromium)
    var anc = window.location.ancestorOrigins;
    var note = document.getElementById("his-sent");
    if (note && msg && anc && anc.length && origins.indexOf(anc[0]) >= 0) note.hidden = false;
  }
  var copy = document.getElementById("quote-copy");
  var text = document.getElementById("quote-text");
  if (copy && text) {
    copy.addEventListener("click", function () {
      var done = document.getElementById("quote-copied");
      text.select();
      var ok = false;
      try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text.value).then(function () { done.textContent = "已复制"; });
      }
      done.textContent = ok ? "已复制" : "请按 Ctrl+C 复制";
    });
  }
})();
