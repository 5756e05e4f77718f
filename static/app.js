// tmctl web UI: small progressive enhancements only; every page works without JavaScript.
(function () {
  // Live log tail: <pre class="log" data-tail="/api/v1/runs/1/tasks/t?try=2"> refreshes while running.
  document.querySelectorAll("pre.log[data-tail]").forEach(function (pre) {
    var url = pre.getAttribute("data-tail");
    var timer = setInterval(function () {
      fetch(url, { headers: { "Accept": "application/json" } }).then(function (r) { return r.json(); }).then(function (v) {
        var tries = v.tries || [];
        var want = parseInt(pre.getAttribute("data-try") || "0", 10);
        var t = tries.filter(function (x) { return x.try_number === want; })[0] || tries[tries.length - 1];
        if (!t) { return; }
        var atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        pre.textContent = t.log;
        if (atBottom) { pre.scrollTop = pre.scrollHeight; }
        if (t.state !== "running") { clearInterval(timer); }
      }).catch(function () {});
    }, 1000);
  });
})();
