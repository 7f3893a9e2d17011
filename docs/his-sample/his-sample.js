/* The sample HIS page's script (see index.html): opens the platform's decision dialog with the
 * order, and shows what comes back. The HIS trusts a message only when it comes from the
 * platform's origin and the dialog it opened, and its type and version are the ones it knows. */
(function () {
  "use strict";
  var q = new URLSearchParams(window.location.search);
  var platform = (q.get("platform") || "").replace(/\/+$/, "");
  var platformOrigin = platform ? new URL(platform).origin : "";
  var visitKeys = ["event_no", "event_type", "dept_code", "dept_name", "dept_std_code", "dept_std_name"];
  document.getElementById("his-origin").textContent = window.location.origin;

  function trigger() {
    // the trigger: /ui/decide with the patient, the visit and the ordered items, and the page token
    var p = new URLSearchParams();
    p.set("id_type_code", q.get("id_type_code") || "01");
    p.set("id_no", q.get("id_no") || "");
    visitKeys.forEach(function (k) { if (q.get(k)) p.set(k, q.get(k)); });
    q.getAll("check").forEach(function (c) { p.append("check", c); });
    q.getAll("lab").forEach(function (c) { p.append("lab", c); });
    p.set("token", q.get("token") || "");
    return platform + "/ui/decide?" + p.toString();
  }

  var ordered = q.getAll("check").length + q.getAll("lab").length;
  document.getElementById("order-summary").textContent = "检查 " + q.getAll("check").length + " 项、检验 " +
    q.getAll("lab").length + " 项（共 " + ordered + " 项）";

  var widgetToken = q.get("widget_token");
  if (widgetToken !== null && platform) {
    var w = document.createElement("iframe");
    var wp = new URLSearchParams({ id_type_code: q.get("id_type_code") || "01", id_no: q.get("id_no") || "", token: widgetToken });
    w.src = platform + "/ui/widget?" + wp.toString();
    w.title = "检查检验结果互认";
    w.width = "150";
    w.height = "34";
    w.id = "huren-widget-frame";
    w.setAttribute("scrolling", "no");
    document.getElementById("widget-slot").appendChild(w);
  }

  var opened = null;
  document.getElementById("open-dialog").addEventListener("click", function () {
    if ((q.get("mode") || "iframe") === "window") {
      var left = Math.max(0, window.screen.availWidth - 460), top = Math.max(0, window.screen.availHeight - 540);
      opened = window.open(trigger(), "huren_decide", "width=450,height=500,left=" + left + ",top=" + top);
      return;
    }
    var frame = document.getElementById("huren-dialog");
    frame.src = trigger();
    document.getElementById("dialog-slot").hidden = false;
    opened = frame.contentWindow;
  });

  function line(i) {
    var li = document.createElement("li");
    li.textContent = (i.kind === "exam" ? "检查 " : "检验 ") + i.code + " " + i.name + "（" + (i.org_name || i.hr_org_code) +
      " " + i.hr_report_form_no + "）" + (i.reason_name ? "：" + i.reason_name : "");
    li.setAttribute("data-code", i.code);
    return li;
  }

  window.addEventListener("message", function (ev) {
    if (ev.origin !== platformOrigin || !opened || ev.source !== opened) return;
    var m = ev.data;
    if (!m || m.type !== "huren:decisions" || m.version !== 1) return;
    var acc = document.getElementById("his-accepted"), rej = document.getElementById("his-rejected");
    acc.textContent = "";
    rej.textContent = "";
    (m.accepted || []).forEach(function (i) { acc.appendChild(line(i)); });
    (m.rejected || []).forEach(function (i) { rej.appendChild(line(i)); });
    document.getElementById("his-text").textContent = m.text || "";
    document.getElementById("his-raw").textContent = JSON.stringify(m, null, 2);
    var status = document.getElementById("his-status");
    status.textContent = (m.action === "quote" ? "已收到引用：" : "已收到互认结果：") + "互认 " + (m.accepted || []).length +
      " 项，不互认 " + (m.rejected || []).length + " 项（就诊流水号 " + (m.visit && m.visit.event_no) + "）";
    status.setAttribute("data-received", "1");
  });
})();
