window.addEventListener("error", function (ev) {
  var msg = (ev && ev.message ? ev.message : "script error") + (ev && ev.lineno ? " (line " + ev.lineno + ")" : "");
  document.documentElement.setAttribute("data-state", "error");
  document.documentElement.setAttribute("data-error", msg);
  var b = document.getElementById("script-error");
  if (b) { b.hidden = false; b.textContent = "This page's script failed: " + msg; }
});
