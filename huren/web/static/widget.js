/* 互认状态图标 for a HIS page, one line:
 *   <script src="http://平台地址/ui/static/widget.js" data-id-type-code="01" data-id-no="…" data-token="…"></script>
 * Inserts the widget iframe where the script is; a click on the green icon shows the reminder
 * panel as a fixed 450×500 iframe at the bottom right, with a 关闭 (close) button; Esc inside the
 * panel (or its 关闭) posts huren:close-panel, which closes it too.
 * Optional visit attributes: data-event-no, data-event-type, data-dept-code, data-dept-name,
 * data-dept-std-code, data-dept-std-name, data-doc-code, data-doc-name. Our own code, no libraries.
 */
(function () {
  "use strict";
  var me = document.currentScript;
  if (!me) return;
  var origin = new URL(me.src, window.location.href).origin;
  var names = ["id_type_code", "id_no", "token", "event_no", "event_type", "dept_code", "dept_name",
    "dept_std_code", "dept_std_name", "doc_code", "doc_name"];
  var params = new URLSearchParams();
  names.forEach(function (n) {
    var v = me.getAttribute("data-" + n.replace(/_/g, "-"));
    if (v) params.set(n, v);
  });
  if (!params.get("id_type_code")) params.set("id_type_code", "01");

  var frame = document.createElement("iframe");
  var wp = new URLSearchParams(params);
  wp.set("embed", "script");
  frame.src = origin + "/ui/widget?" + wp.toString();
  frame.title = "检查检验结果互认";
  frame.width = "150";
  frame.height = "34";
  frame.style.cssText = "border:0;vertical-align:middle;overflow:hidden;";
  frame.setAttribute("scrolling", "no");
  me.parentNode.insertBefore(frame, me);

  var box = null;
  var panel = null;
  function close() {
    if (box) { box.remove(); box = null; panel = null; }
  }
  function open() {
    if (box) return;
    box = document.createElement("div");
    box.setAttribute("role", "dialog");
    box.setAttribute("aria-label", "检查检验结果互认提醒");
    box.style.cssText = "position:fixed;right:12px;bottom:12px;width:450px;height:500px;z-index:2147483000;" +
      "background:#fff;border:1px solid #9aa3ad;box-shadow:0 4px 18px rgba(0,0,0,.25);";
    var btn = document.createElement("button");
    btn.type = "button";
    btn.textContent = "关闭";
    btn.style.cssText = "position:absolute;top:4px;right:6px;z-index:1;font-size:12px;padding:1px 8px;cursor:pointer;";
    btn.addEventListener("click", close);
    panel = document.createElement("iframe");
    panel.src = origin + "/ui/panel?" + params.toString();
    panel.title = "检查检验结果互认提醒";
    panel.style.cssText = "border:0;width:450px;height:500px;display:block;";
    box.appendChild(btn);
    box.appendChild(panel);
    document.body.appendChild(box);
  }
  // only the platform's own frames are listened to: the widget asks to open the panel; the panel
  // (or the decision dialog it navigated to, the same frame) asks to close it (Esc, 关闭)
  window.addEventListener("message", function (ev) {
    if (ev.origin !== origin || !ev.data) return;
    if (ev.source === frame.contentWindow && ev.data.type === "huren:open-panel") open();
    else if (panel && ev.source === panel.contentWindow && ev.data.type === "huren:close-panel") close();
  });
})();
