/* Doctor pages: widget click, picklist filter, decision dialog checks. Our own, no libraries. */
(function () {
  "use strict";

  // -- the status widget: open the 450×500 reminder panel at the bottom right ----------------
  var widget = document.getElementById("huren-widget");
  if (widget && widget.classList.contains("on")) {
    widget.addEventListener("click", function (ev) {
      ev.preventDefault();
      if (widget.dataset.embedded === "1" && window.parent !== window) {
        // inside widget.js: the script on the HIS page shows the panel itself
        window.parent.postMessage({ type: "huren:open-panel" }, "*");
        return;
      }
      var w = 450, h = 500;
      var left = Math.max(0, (window.screen.availLeft || 0) + window.screen.availWidth - w - 10);
      var top = Math.max(0, (window.screen.availTop || 0) + window.screen.availHeight - h - 40);
      var win = window.open(widget.dataset.panelUrl, "huren_panel",
        "width=" + w + ",height=" + h + ",left=" + left + ",top=" + top + ",resizable=yes,scrollbars=yes");
      if (win) { win.focus(); } else { window.top.location.href = widget.dataset.panelUrl; }
    });
  }

  // -- ordering form: filter the catalog, count the picks -------------------------------------
  var order = document.getElementById("order-form");
  if (order) {
    var filter = order.querySelector(".pick-filter");
    var picks = order.querySelectorAll("label.pick");
    var count = order.querySelector(".pick-count");
    var submit = document.getElementById("order-submit");
    var refresh = function () {
      var n = order.querySelectorAll("label.pick input:checked").length;
      count.textContent = n ? "已选择 " + n + " 项" : "未选择项目";
      submit.disabled = n === 0;
    };
    if (filter) {
      filter.addEventListener("input", function () {
        var q = filter.value.trim().toLowerCase();
        picks.forEach(function (p) {
          var hit = !q || (p.dataset.text || "").toLowerCase().indexOf(q) >= 0;
          var box = p.querySelector("input");
          p.hidden = !hit && !(box && box.checked);
        });
      });
    }
    order.addEventListener("change", refresh);
    refresh();
  }

  // -- Esc closes the panel or the dialog: a window the widget opened closes, a frame asks the HIS
  // page (widget.js) to close it, else back to the page before
  if (document.getElementById("huren-panel") || document.getElementById("decide-form") || document.getElementById("nothing-recognizable")) {
    document.addEventListener("keydown", function (ev) {
      if (ev.key !== "Escape" || ev.defaultPrevented) return;
      var t = ev.target;
      if (t && t.tagName === "SELECT") return; // Esc first closes an open list
      ev.preventDefault();
      if (window.opener && !window.opener.closed) { window.close(); return; }
      if (window.parent !== window) { escClosing = true; return; } // asked at keyup (below)
      window.close();
      if (!window.closed && window.history.length > 1) window.history.back();
    });
    // in a frame, the HIS page removes this frame when asked: ask once the key is released, so the
    // key press ends inside the frame (a frame removed between keydown and keyup leaves the
    // browser's key event unanswered — seen as a hung automated Esc)
    var escClosing = false;
    document.addEventListener("keyup", function (ev) {
      if (ev.key !== "Escape" || !escClosing) return;
      escClosing = false;
      window.parent.postMessage({ type: "huren:close-panel" }, "*");
    });
  }

  // -- the lookup page: the ID number field has the focus
  var idField = document.getElementById("lookup-id-no");
  if (idField && document.activeElement !== idField) { idField.focus(); idField.select(); }

  // -- decision dialog: every row decided, every rejection with a reason, the visit filled in;
  // a refusal (the server's or ours) always shown and focused; an expired login keeps the choices
  var form = document.getElementById("decide-form");
  if (form) {
    var save = document.getElementById("decide-save");
    var hint = document.getElementById("decide-hint");
    var alertBox = document.getElementById("decide-alert");
    var serverErrors = document.getElementById("decide-errors");
    var rows = form.querySelectorAll("tr[data-row]:not([data-done])");
    hint.tabIndex = -1;
    var visitFields = form.querySelectorAll("[data-visit]");
    // the choices survive a reload or a new login in this tab; the key names the rows, not the patient
    var key = (function () {
      var text = "";
      form.querySelectorAll('input[name="row"]').forEach(function (r) { text += r.value; });
      var h = 5381;
      for (var k = 0; k < text.length; k++) { h = ((h * 33) ^ text.charCodeAt(k)) >>> 0; }
      return "huren-decide:" + h.toString(36);
    })();
    var fields = function () {
      return form.querySelectorAll('input[type="radio"][name^="is_accept_"], select[name^="reason_"], [data-visit]');
    };
    var persist = function () {
      var kept = {};
      fields().forEach(function (el) {
        if (el.type === "radio") { if (el.checked) kept[el.name] = el.value; }
        else if (el.value) kept[el.name] = el.value;
      });
      try { window.sessionStorage.setItem(key, JSON.stringify(kept)); } catch (e) { /* storage off: the page keeps them */ }
    };
    var restore = function () {
      var kept = null;
      try { kept = JSON.parse(window.sessionStorage.getItem(key) || "null"); } catch (e) { kept = null; }
      if (!kept || serverErrors) return; // a refused form comes back with the server's copy of the choices
      fields().forEach(function (el) {
        if (!(el.name in kept)) return;
        if (el.type === "radio") el.checked = el.value === kept[el.name];
        else if (!el.value) el.value = kept[el.name];
      });
    };
    var show = function (html) {
      alertBox.innerHTML = html;
      alertBox.hidden = false;
      alertBox.focus();
      alertBox.scrollIntoView({ block: "nearest" });
    };
    var check = function () {
      var open = 0, noReason = 0, missing = [];
      rows.forEach(function (tr) {
        var i = tr.dataset.row;
        var picked = form.querySelector('input[name="is_accept_' + i + '"]:checked');
        var reason = form.querySelector('select[name="reason_' + i + '"]');
        var reject = picked && picked.value === "2";
        reason.disabled = !reject;
        var done = picked && (!reject || reason.value !== "");
        if (!picked) open += 1;
        else if (!done) noReason += 1;
        tr.classList.toggle("undecided", !done);
      });
      visitFields.forEach(function (el) {
        var empty = !el.value.trim();
        el.classList.toggle("undecided", empty);
        if (empty) missing.push(el.dataset.visit);
      });
      var ready = rows.length > 0 && open === 0 && noReason === 0 && missing.length === 0;
      save.disabled = !ready;
      var parts = [];
      if (open) parts.push("还有 " + open + " 项未选择是否互认");
      if (noReason) parts.push(noReason + " 项不互认未选择理由");
      if (missing.length) parts.push("请填写" + missing.join("、"));
      hint.textContent = ready ? "已全部选择，可以保存" : parts.join("，");
      hint.classList.toggle("done", ready);
      // the server's refusal stays on the page until the form is sent again
    };
    restore();
    // 全部互认: every row still open is set to 互认 (a row already set to 不互认 keeps its choice)
    var acceptAll = document.getElementById("accept-all");
    if (acceptAll) {
      acceptAll.addEventListener("click", function () {
        rows.forEach(function (tr) {
          var i = tr.dataset.row;
          if (!form.querySelector('input[name="is_accept_' + i + '"]:checked')) {
            var yes = form.querySelector('input[name="is_accept_' + i + '"][value="1"]');
            if (yes) yes.checked = true;
          }
        });
        check();
        persist();
        if (!save.disabled) save.focus();
      });
    }
    // the reason list shows short labels: the chosen reason's full text is the list's hover title
    var titled = function (sel) {
      var opt = sel.options[sel.selectedIndex];
      sel.title = opt && opt.value ? opt.title : "不互认须选择理由";
    };
    form.querySelectorAll("select.reason").forEach(titled);
    form.addEventListener("change", function (ev) { if (ev.target.matches && ev.target.matches("select.reason")) titled(ev.target); });
    // Enter saves once everything is chosen (else it says what is missing); links, lists and buttons keep their own Enter
    form.addEventListener("keydown", function (ev) {
      if (ev.key !== "Enter" || ev.isComposing) return;
      var t = ev.target;
      if (t.tagName === "A" || t.tagName === "SELECT" || t.tagName === "BUTTON" || t.tagName === "TEXTAREA") return;
      ev.preventDefault();
      check();
      if (!save.disabled) {
        if (form.requestSubmit) form.requestSubmit(save); else save.click();
      } else {
        hint.focus();
      }
    });
    form.addEventListener("change", function () { check(); persist(); });
    form.addEventListener("input", function () { check(); persist(); });
    form.addEventListener("submit", function (ev) {
      if (form.dataset.alive === "1") return;
      ev.preventDefault();
      persist();
      var token = form.querySelector('input[name="token"]');
      var url = "/ui/alive" + (token ? "?token=" + encodeURIComponent(token.value) : "");
      var kept = "本页的选择已保留。";
      fetch(url, { credentials: "same-origin", cache: "no-store", redirect: "manual" }).then(function (r) {
        if (r.status === 200) {
          return r.json().then(function (state) {
            var csrf = form.querySelector('input[name="csrf_token"]');
            if (csrf && state.csrf) csrf.value = state.csrf; // logged in again: the new session's form token
            try { window.sessionStorage.removeItem(key); } catch (e) { /* nothing kept */ }
            form.dataset.alive = "1";
            save.disabled = true;
            hint.textContent = "正在保存…";
            form.submit();
          });
        } else if (r.status === 401 || r.type === "opaqueredirect") {
          if (form.dataset.session === "1") {
            var next = encodeURIComponent(window.location.pathname + window.location.search);
            show("<strong>登录已超时，未能保存。</strong>" + kept + '请<a href="/ui/login?next=' + next +
              '" target="_blank" rel="noopener">在新窗口重新登录</a>后，回到本页再点“确认并保存”。');
          } else {
            show("<strong>登录已超时，未能保存。</strong>" + kept + "请从 HIS 重新打开本页面，已做的选择会自动恢复。");
          }
        } else {
          show("<strong>未能确认登录状态（" + r.status + "），未能保存。</strong>" + kept + "请稍后重试。");
        }
      }, function () {
        show("<strong>无法连接平台，未能保存。</strong>" + kept + "请检查网络后重试。");
      });
    });
    check();
    if (serverErrors) { serverErrors.focus(); serverErrors.scrollIntoView({ block: "nearest" }); }
  }
})();
