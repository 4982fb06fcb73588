// Served by Nginx from the current release's static folder.
(function () {
  var status = document.getElementById("js-status");
  status.textContent = "Static script loaded from Nginx.";
  status.className = "ok";
  document.body.setAttribute("data-js", "loaded");
})();
