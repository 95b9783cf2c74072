/*
 * The campaign form's live whisper preview (campaigns.admin.CampaignAdmin).
 *
 * While the marketer edits the name, topic, whisper template, language, "press 1 to
 * accept" and its prompt, or the tracking numbers, the preview is asked for again
 * (debounced, 200 ms) from the campaign admin's preview endpoint,
 * <admin>/campaigns/campaign/preview/?template=…&topic=…&name=…&language=…&number=…&source=…,
 * which renders it with campaigns.whisper.render_template, the renderer real calls use:
 * the browser never renders a whisper itself. A template with an unknown variable shows
 * the form's own validation message instead of the preview.
 *
 * Stable element ids (browser tests rely on them; keep them):
 *   #whisper-preview                 the container: data-preview-url (the endpoint),
 *                                    data-language (the saved language), and data-state:
 *                                    "pending" from an edit until its answer is shown,
 *                                    then "ready" (or "error" for an invalid template)
 *   #whisper-preview-text            the rendered whisper, as the agent hears it
 *   #whisper-preview-error           the template's validation error; while it shows, the
 *                                    text (#whisper-preview-quote) and timing are hidden
 *   #whisper-preview-note            which number the preview is for, and the sample values
 *   #whisper-preview-seconds         the estimated speaking time in seconds, e.g. "2.1"
 *   #whisper-preview-accept-seconds  the same with the accept prompt; its wrapper
 *                                    #whisper-preview-accept shows only with "press 1 to accept"
 *   #whisper-preview-warning         shown when the whisper takes more than about 5 seconds
 *   #whisper-preview-listen          speaks the whisper in the browser (speechSynthesis) in
 *                                    the campaign's language; hidden where it cannot speak
 *
 * Read-only viewers have no inputs: they get the server's preview and the Listen button.
 */
"use strict";
(function () {
  const DEBOUNCE_MS = 200;
  // Form fields whose edits change the preview: id_<name> on the campaign form.
  const FIELDS = ["name", "topic", "whisper_template", "language", "require_accept", "accept_prompt"];
  // Any tracking-number inline row (numbers-0-number, numbers-3-is_active, …).
  const NUMBER_ROW_FIELD = /^numbers-\d+-(number|source|is_active|DELETE)$/;

  function byId(id) {
    return document.getElementById(id);
  }

  function show(element, visible) {
    if (element) {
      element.hidden = !visible;
    }
  }

  function fieldValue(name) {
    const input = byId("id_" + name);
    if (!input) {
      return null;
    }
    return input.type === "checkbox" ? input.checked : input.value;
  }

  function rowField(prefix, name) {
    return document.querySelector('[name="' + prefix + "-" + name + '"]');
  }

  // The number a call would most likely come in on, as the server's first render picks
  // it: the first active row with a number (rows marked for deletion left out), else the
  // first row with one; null when there is none, and the server uses its samples.
  function firstNumber() {
    const rows = [];
    document.querySelectorAll('input[name^="numbers-"][name$="-number"]').forEach(function (input) {
      const prefix = input.name.slice(0, -"-number".length);
      if (prefix.indexOf("__prefix__") !== -1 || !input.value.trim()) {
        return;
      }
      const deleted = rowField(prefix, "DELETE");
      if (deleted && deleted.checked) {
        return;
      }
      const active = rowField(prefix, "is_active");
      const source = rowField(prefix, "source");
      rows.push({
        number: input.value,
        source: source ? source.value : "",
        active: !active || active.checked,
      });
    });
    return rows.find(function (row) { return row.active; }) || rows[0] || null;
  }

  function language(container) {
    const typed = fieldValue("language");
    return (typed === null ? container.dataset.language : typed).trim();
  }

  function query(container) {
    const params = new URLSearchParams();
    params.set("template", fieldValue("whisper_template") || "");
    params.set("topic", fieldValue("topic") || "");
    params.set("name", fieldValue("name") || "");
    params.set("language", language(container));
    const number = firstNumber();
    if (number) {
      params.set("number", number.number);
      params.set("source", number.source);
    }
    if (fieldValue("require_accept")) {
      params.set("accept_prompt", fieldValue("accept_prompt") || "");
    }
    return params;
  }

  function render(container, preview) {
    const failed = Boolean(preview.error);
    byId("whisper-preview-text").textContent = preview.text;
    byId("whisper-preview-error").textContent = preview.error;
    show(byId("whisper-preview-error"), failed);
    show(byId("whisper-preview-quote"), !failed);
    show(byId("whisper-preview-timing"), !failed);
    byId("whisper-preview-note").textContent = preview.note;
    byId("whisper-preview-seconds").textContent = failed ? "" : String(preview.seconds);
    const withPrompt = preview.seconds_with_accept_prompt;
    byId("whisper-preview-accept-seconds").textContent = withPrompt === null ? "" : String(withPrompt);
    show(byId("whisper-preview-accept"), withPrompt !== null);
    show(byId("whisper-preview-warning"), preview.warning);
    if (preview.warning_text) {
      byId("whisper-preview-warning").textContent = preview.warning_text;
    }
    const listen = byId("whisper-preview-listen");
    if (listen) {
      listen.disabled = failed || !preview.text;
    }
    container.dataset.state = failed ? "error" : "ready";
  }

  function renderFailure(container) {
    const error = byId("whisper-preview-error");
    error.textContent = "The preview could not be updated. Save the campaign to check the whisper.";
    show(error, true);
    container.dataset.state = "error";
  }

  function setUpLivePreview(container) {
    let timer = null;
    let inFlight = null;
    let asked = 0;

    function refresh() {
      const ask = ++asked;
      if (inFlight) {
        inFlight.abort();
      }
      inFlight = new AbortController();
      const url = container.dataset.previewUrl + "?" + query(container).toString();
      fetch(url, {
        credentials: "same-origin",
        headers: { Accept: "application/json" },
        signal: inFlight.signal,
      })
        .then(function (response) {
          // A session that has expired answers with the login page, not JSON.
          const type = response.headers.get("Content-Type") || "";
          if (!response.ok || type.indexOf("application/json") === -1) {
            throw new Error("preview " + response.status);
          }
          return response.json();
        })
        .then(function (preview) {
          if (ask === asked) {
            render(container, preview);
          }
        })
        .catch(function (error) {
          if (error.name !== "AbortError" && ask === asked) {
            renderFailure(container);
          }
        });
    }

    function schedule() {
      container.dataset.state = "pending";
      window.clearTimeout(timer);
      timer = window.setTimeout(refresh, DEBOUNCE_MS);
    }

    function affectsPreview(target) {
      if (!target || !target.name) {
        return false;
      }
      return FIELDS.indexOf(target.name) !== -1 || NUMBER_ROW_FIELD.test(target.name);
    }

    const form = container.closest("form");
    ["input", "change"].forEach(function (type) {
      form.addEventListener(type, function (event) {
        if (affectsPreview(event.target)) {
          schedule();
        }
      });
    });
    // Django's inline formsets: a removed row no longer counts.
    document.addEventListener("formset:removed", schedule);
    // The form may differ from the saved campaign (a failed save, values from the URL).
    refresh();
  }

  function pickVoice(lang) {
    const wanted = lang.toLowerCase().replace("_", "-");
    const voices = window.speechSynthesis.getVoices();
    const normalised = function (voice) { return voice.lang.toLowerCase().replace("_", "-"); };
    return (
      voices.find(function (voice) { return normalised(voice) === wanted; }) ||
      voices.find(function (voice) { return normalised(voice).split("-")[0] === wanted.split("-")[0]; }) ||
      null
    );
  }

  function setUpListen(container) {
    const listen = byId("whisper-preview-listen");
    if (!listen || !("speechSynthesis" in window) || typeof window.SpeechSynthesisUtterance !== "function") {
      return;
    }
    listen.hidden = false;
    listen.disabled = !byId("whisper-preview-text").textContent.trim() || !byId("whisper-preview-error").hidden;
    listen.addEventListener("click", function () {
      const text = byId("whisper-preview-text").textContent.trim();
      if (!text) {
        return;
      }
      const synth = window.speechSynthesis;
      synth.cancel();
      const utterance = new window.SpeechSynthesisUtterance(text);
      const lang = language(container);
      if (lang) {
        utterance.lang = lang;
        const voice = pickVoice(lang);
        if (voice) {
          utterance.voice = voice;
        }
      }
      synth.speak(utterance);
    });
  }

  function start() {
    const container = byId("whisper-preview");
    if (!container) {
      return;
    }
    setUpListen(container);
    if (byId("id_whisper_template") && container.closest("form")) {
      setUpLivePreview(container);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
