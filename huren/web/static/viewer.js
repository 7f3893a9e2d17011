/* huren imaging viewer: pages through server-rendered frames (series, frame, window preset).
   Our own small script, no third-party code; the page works without it (every control is a link). */
(function () {
  "use strict";
  var root = document.getElementById("viewer");
  var img = document.getElementById("frame");
  if (!root || !img) return;

  var tpl = root.getAttribute("data-frame-tpl") || "";
  var seriesLinks = Array.prototype.slice.call(root.querySelectorAll("a.series"));
  var series = seriesLinks.map(function (a) {
    var inst = [], presets = [];
    try { inst = JSON.parse(a.getAttribute("data-instances") || "[]"); } catch (e) { inst = []; }
    try { presets = JSON.parse(a.getAttribute("data-presets") || "[]"); } catch (e) { presets = []; }
    var total = 0;
    inst.forEach(function (x) { total += Math.max(1, x[1] | 0); });
    return { uid: a.getAttribute("data-uid"), instances: inst, presets: presets, total: total };
  });
  if (!series.length) return;

  var state = {
    s: clamp(parseInt(root.getAttribute("data-series-index"), 10) || 0, 0, series.length - 1),
    f: parseInt(root.getAttribute("data-frame-index"), 10) || 0,
    p: root.getAttribute("data-preset") || "default"
  };
  var prev = document.getElementById("prev");
  var next = document.getElementById("next");
  var counter = document.getElementById("counter");
  var presetBox = document.getElementById("presets");
  var errorBox = document.getElementById("frame-error");
  var frameBox = document.getElementById("frame-box");
  var cache = [];

  function clamp(v, lo, hi) { return v < lo ? lo : v > hi ? hi : v; }

  function locate(s, i) {  // the i-th frame of a series: [instance UID, frame number from 1]
    var inst = series[s].instances;
    for (var k = 0; k < inst.length; k++) {
      var n = Math.max(1, inst[k][1] | 0);
      if (i < n) return [inst[k][0], i + 1];
      i -= n;
    }
    var last = inst[inst.length - 1];
    return [last[0], Math.max(1, last[1] | 0)];
  }

  function windowOf(s, code) {
    var p = series[s].presets;
    for (var k = 0; k < p.length; k++) if (p[k][0] === code) return p[k][2];
    return "";
  }

  function frameUrl(s, f, code) {  // as routes_imaging.frame_url builds it
    var at = locate(s, f);
    var url = tpl.replace("{series}", series[s].uid).replace("{instance}", at[0]).replace("{frame}", String(at[1]));
    var w = windowOf(s, code);
    return w ? url + "&window=" + w : url;
  }

  function pageUrl(s, f, code) {  // the same page, at this position (keeps token / key)
    var u = new URL(window.location.href);
    u.searchParams.set("series", series[s].uid);
    u.searchParams.set("i", String(f));
    u.searchParams.set("w", code);
    return u.pathname + u.search;
  }

  function presetButtons() {
    if (!presetBox) return;
    while (presetBox.firstChild) presetBox.removeChild(presetBox.firstChild);
    series[state.s].presets.forEach(function (p) {
      var a = document.createElement("a");
      a.className = "button preset" + (p[0] === state.p ? " active" : "");
      a.setAttribute("data-code", p[0]);
      a.setAttribute("data-window", p[2]);
      a.href = pageUrl(state.s, state.f, p[0]);
      a.textContent = p[1];
      presetBox.appendChild(a);
    });
  }

  function preload(s, f) {
    if (f < 0 || f >= series[s].total) return;
    var im = new Image();
    im.src = frameUrl(s, f, state.p);
    cache.push(im);
    if (cache.length > 6) cache.shift();
  }

  // a burst of steps (wheel, a held arrow key) asks the server for the frame it stops at, not for
  // every frame on the way; the neighbour in the direction of travel is fetched once a frame is shown
  var timer = null, direction = 1;
  function load() {
    timer = null;
    var src = frameUrl(state.s, state.f, state.p);
    if (img.getAttribute("src") !== src) {
      root.classList.add("loading");
      img.setAttribute("src", src);
    }
  }

  function show(now) {
    var total = series[state.s].total;
    state.f = clamp(state.f, 0, total - 1);
    if (timer !== null) window.clearTimeout(timer);
    if (now) load(); else timer = window.setTimeout(load, 60);
    img.alt = "影像（第 " + (state.f + 1) + " 帧）";
    if (counter) counter.textContent = (state.f + 1) + " / " + total;
    if (prev) {
      prev.href = pageUrl(state.s, Math.max(0, state.f - 1), state.p);
      prev.setAttribute("aria-disabled", state.f === 0 ? "true" : "false");
    }
    if (next) {
      next.href = pageUrl(state.s, Math.min(total - 1, state.f + 1), state.p);
      next.setAttribute("aria-disabled", state.f + 1 >= total ? "true" : "false");
    }
    seriesLinks.forEach(function (a, k) {
      a.classList.toggle("active", k === state.s);
      if (k === state.s) a.setAttribute("aria-current", "true"); else a.removeAttribute("aria-current");
    });
    Array.prototype.forEach.call(presetBox ? presetBox.querySelectorAll("a.preset") : [], function (a) {
      var code = a.getAttribute("data-code");
      a.classList.toggle("active", code === state.p);
      a.href = pageUrl(state.s, state.f, code);
    });
    if (window.history && window.history.replaceState) window.history.replaceState(null, "", pageUrl(state.s, state.f, state.p));
  }

  function step(d) {
    var f = clamp(state.f + d, 0, series[state.s].total - 1);
    direction = d < 0 ? -1 : 1;
    if (f !== state.f) { state.f = f; show(false); }
  }

  function selectSeries(k) {
    if (k === state.s || k < 0 || k >= series.length) return;
    state.s = k;
    state.f = 0;
    var codes = series[k].presets.map(function (p) { return p[0]; });
    if (codes.indexOf(state.p) < 0) state.p = "default";
    presetButtons();
    show(true);
  }

  img.addEventListener("load", function () {
    root.classList.remove("loading");
    if (errorBox) errorBox.hidden = true;
    if (timer === null) preload(state.s, state.f + direction);
  });
  img.addEventListener("error", function () {
    root.classList.remove("loading");
    if (errorBox) errorBox.hidden = false;
  });

  if (prev) prev.addEventListener("click", function (ev) { ev.preventDefault(); step(-1); });
  if (next) next.addEventListener("click", function (ev) { ev.preventDefault(); step(1); });
  seriesLinks.forEach(function (a, k) {
    a.addEventListener("click", function (ev) { ev.preventDefault(); selectSeries(k); });
  });
  if (presetBox) presetBox.addEventListener("click", function (ev) {
    var a = ev.target && ev.target.closest ? ev.target.closest("a.preset") : null;
    if (!a) return;
    ev.preventDefault();
    state.p = a.getAttribute("data-code") || "default";
    show(true);
  });

  document.addEventListener("keydown", function (ev) {
    var t = ev.target, tag = t && t.tagName ? t.tagName.toLowerCase() : "";
    if (tag === "input" || tag === "textarea" || tag === "select" || ev.altKey || ev.ctrlKey || ev.metaKey) return;
    if (ev.key === "ArrowLeft") { ev.preventDefault(); step(-1); }
    else if (ev.key === "ArrowRight") { ev.preventDefault(); step(1); }
  });

  // the mouse wheel pages frames over the image (a trackpad's small deltas add up)
  var wheel = 0;
  if (frameBox) frameBox.addEventListener("wheel", function (ev) {
    ev.preventDefault();
    if (ev.deltaMode !== 0) { step(ev.deltaY > 0 ? 1 : -1); return; }
    wheel += ev.deltaY;
    while (Math.abs(wheel) >= 40) { step(wheel > 0 ? 1 : -1); wheel -= wheel > 0 ? 40 : -40; }
  }, { passive: false });

  // on a phone: swipe left / right over the image
  var touchX = null, touchY = null;
  if (frameBox) {
    frameBox.addEventListener("touchstart", function (ev) {
      if (ev.touches.length === 1) { touchX = ev.touches[0].clientX; touchY = ev.touches[0].clientY; }
    }, { passive: true });
    frameBox.addEventListener("touchend", function (ev) {
      if (touchX === null || !ev.changedTouches.length) return;
      var dx = ev.changedTouches[0].clientX - touchX, dy = ev.changedTouches[0].clientY - touchY;
      touchX = touchY = null;
      if (Math.abs(dx) > 40 && Math.abs(dx) > Math.abs(dy)) step(dx < 0 ? 1 : -1);
    }, { passive: true });
  }

  root.classList.add("scripted");
  show(true);
})();
