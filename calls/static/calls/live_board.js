// The live board: fetch a fresh board about every second and swap it in (no reload),
// and tick the clocks in between from their data-since times. The server's clock is
// the reference (data-now-ms), so a viewer whose own clock is wrong still reads true
// waits. No library, no CDN.
(function () {
  "use strict";
  var root = document.getElementById("live-board");
  if (!root) {
    return;
  }
  var url = root.dataset.fragmentUrl;
  var pollMs = parseInt(root.dataset.pollMs, 10) || 1000;
  var status = document.getElementById("live-status");
  var offsetMs = 0; // server time minus this browser's time
  var inFlight = false;
  // Read by the browser test: the page was never reloaded while it refreshed.
  window.liveBoard = { loadedAt: Date.now(), refreshes: 0 };

  function syncClock() {
    var content = root.querySelector(".live-board-content");
    var now = content ? parseInt(content.dataset.nowMs, 10) : NaN;
    if (!isNaN(now)) {
      offsetMs = now - Date.now();
    }
  }

  function format(seconds) {
    seconds = Math.max(0, Math.floor(seconds));
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    var mm = h ? String(m).padStart(2, "0") : String(m);
    return (h ? h + ":" : "") + mm + ":" + String(s).padStart(2, "0");
  }

  function tick() {
    var now = Date.now() + offsetMs;
    root.querySelectorAll(".clock[data-since]").forEach(function (clock) {
      var seconds = (now - parseInt(clock.dataset.since, 10)) / 1000;
      clock.textContent = format(seconds);
      var limit = parseInt(clock.dataset.limit, 10);
      var over = !isNaN(limit) && seconds > limit;
      clock.classList.toggle("over", over);
      var row = clock.closest("tr");
      if (row) {
        row.classList.toggle("over", over);
      }
    });
  }

  function refresh() {
    if (inFlight) {
      return;
    }
    inFlight = true;
    fetch(url, { credentials: "same-origin", headers: { "X-Requested-With": "fetch" }, cache: "no-store" })
      .then(function (response) {
        // Logged out (the admin redirects to its login page) or refused.
        if (!response.ok || response.redirected) {
          throw new Error("The board could not be refreshed (HTTP " + response.status + ").");
        }
        return response.text();
      })
      .then(function (html) {
        root.innerHTML = html;
        syncClock();
        tick();
        window.liveBoard.refreshes += 1;
        status.classList.remove("stale");
        status.textContent = "Updated at " + new Date(Date.now() + offsetMs).toLocaleTimeString() + ".";
      })
      .catch(function (error) {
        status.classList.add("stale");
        status.textContent = error.message + " Trying again; reload the page if this stays.";
      })
      .then(function () {
        inFlight = false;
      });
  }

  syncClock();
  tick();
  setInterval(tick, 250);
  setInterval(refresh, pollMs);
})();
