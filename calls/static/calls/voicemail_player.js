// The call page's voicemail player: when the recording cannot be played, say why
// instead of a silent 0:00. The audio comes through the admin (it fetches it from
// Vonage); asking the same address again gives the admin's own explanation.
(function () {
  "use strict";
  document.querySelectorAll(".voicemail-player").forEach(function (player) {
    var audio = player.querySelector("audio");
    var message = player.querySelector(".voicemail-error");
    if (!audio || !message || audio.dataset.watched) {
      return;
    }
    audio.dataset.watched = "1";
    function explain(text) {
      message.textContent = text;
      message.hidden = false;
    }
    audio.addEventListener("error", function () {
      fetch(audio.currentSrc || audio.src, { credentials: "same-origin" })
        .then(function (response) {
          if (response.ok) {
            return "The voicemail was fetched, but this browser cannot play it: use the download link.";
          }
          return response.text().then(function (text) {
            var reason = text && text.length < 500 && !/^\s*</.test(text) ? text : "";
            return "The voicemail cannot be played (" + response.status + "). " + reason;
          });
        })
        .catch(function () {
          return "The voicemail cannot be played: the admin could not be reached.";
        })
        .then(explain);
    });
  });
})();
