// The task page follows the log of an attempt that is queued or running: every second it
// asks the API for what was written after its cursor, appends it, and reloads the page once
// the attempt has ended (so its state and the attempts table are current).
(function () {
  "use strict";
  var pre = document.querySelector("pre[data-follow]");
  if (!pre) {
    return;
  }
  var cursor = Number(pre.dataset.cursor);
  var empty = pre.dataset.empty === "1";
  function poll() {
    fetch(pre.dataset.follow + "?cursor=" + cursor, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (resp) {
        return resp.ok ? resp.json() : null;
      })
      .then(function (page) {
        if (page === null) {
          setTimeout(poll, 1000);
          return;
        }
        if (page.content) {
          if (empty) {
            pre.textContent = "";
            empty = false;
          }
          pre.textContent += page.content;
        }
        cursor = page.cursor;
        if (page.ended) {
          window.location.reload();
        } else {
          setTimeout(poll, 1000);
        }
      })
      .catch(function () {
        setTimeout(poll, 1000); // a webserver restarting behind haproxy: ask again
      });
  }
  setTimeout(poll, 1000);
})();
