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

  // -- decision dialog: every row decided, every rejection with a reason -----------------------
  var form = document.getElementById("decide-form");
  if (form) {
    var save = document.getElementById("decide-save");
    var hint = document.getElementById("decide-hint");
    var rows = form.querySelectorAll("tr[data-row]");
    var check = function () {
      var open = 0, noReason = 0;
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
      var ready = open === 0 && noReason === 0;
      save.disabled = !ready;
      var parts = [];
      if (open) parts.push("还有 " + open + " 项未选择是否互认");
      if (noReason) parts.push(noReason + " 项不互认未选择理由");
      hint.textContent = ready ? "已全部选择，可以保存" : parts.join("，");
      hint.classList.toggle("done", ready);
      var errs = document.getElementById("decide-errors");
      if (errs) errs.hidden = ready; // the server's refusal no longer applies
    };
    form.addEventListener("change", check);
    check();
  }
})();
