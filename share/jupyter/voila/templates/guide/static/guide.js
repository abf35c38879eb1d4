// Page behaviour for the guide in Voilà, for people using screen readers or a keyboard:
// - <html lang> follows the guide's language (the step carries data-guide-lang), and the
//   page title names the current step in that language;
// - when the step changes, focus moves to the new step's heading, so it is announced and
//   keyboard users continue from there instead of from the top of the page;
// - the language buttons form a group named "Language" (in the guide's language), each
//   button's text marked with its own language;
// - the page's own texts (the language group's name, the site's title) are the flow's
//   interface texts in the guide's language: the step carries them as data-guide-language
//   and data-guide-site-title (widgets/view.py renders them from flow.yaml's `ui`);
// - toggle buttons say whether they are on: the language buttons with aria-pressed, the
//   panel toggle (case notes) with aria-expanded (ipywidgets only shows it with a class);
// - the option chosen before at a step (highlighted) is marked aria-current;
// - the file button is named by its label, without the widget's file counter;
// - the notebook's content is the page's main landmark;
// - a double-click on a guide button counts as one click: the buttons stay in place from
//   step to step, so a second click would otherwise answer the next question unseen.
(function () {
  "use strict";
  var lastStep = null;

  function setAttr(element, name, value) {
    if (element.getAttribute(name) !== value) {
      element.setAttribute(name, value);
    }
  }

  function syncToggles(languageGroup) {
    var groups = document.querySelectorAll(".guide .widget-toggle-buttons");
    for (var g = 0; g < groups.length; g++) {
      setAttr(groups[g], "role", "group");
      if (languageGroup) {
        setAttr(groups[g], "aria-label", languageGroup);
      }
    }
    var buttons = document.querySelectorAll(".guide .widget-toggle-button");
    for (var i = 0; i < buttons.length; i++) {
      var button = buttons[i];
      var on = button.classList.contains("mod-active") ? "true" : "false";
      if (button.closest(".widget-toggle-buttons")) {
        setAttr(button, "aria-pressed", on);
        // each language's name in its own language ("한국어" is read as Korean)
        setAttr(button, "lang", /[\uac00-\ud7a3]/.test(button.textContent) ? "ko" : "en");
      } else {
        setAttr(button, "aria-expanded", on);
      }
    }
  }

  function syncOptions() {
    // the option chosen last time at this step (highlighted by its "info" style)
    var options = document.querySelectorAll(".guide .guide-option");
    for (var i = 0; i < options.length; i++) {
      if (options[i].classList.contains("mod-info")) {
        setAttr(options[i], "aria-current", "true");
      } else if (options[i].hasAttribute("aria-current")) {
        options[i].removeAttribute("aria-current");
      }
    }
  }

  function syncUpload() {
    // the file button's text ends with ipywidgets' file counter, "(0)": its name is the label
    var uploads = document.querySelectorAll(".guide .widget-upload");
    for (var i = 0; i < uploads.length; i++) {
      var label = uploads[i].textContent.replace(/\s*\(\d+\)\s*$/, "").trim();
      if (label) {
        setAttr(uploads[i], "aria-label", label);
      }
    }
  }

  function syncLandmark() {
    var cells = document.getElementById("rendered_cells");
    if (cells && !document.querySelector("main, [role='main']")) {
      cells.setAttribute("role", "main");
    }
  }

  function sync() {
    syncLandmark();
    syncOptions();
    syncUpload();
    var step = document.querySelector(".guide [data-guide-lang]");
    if (!step) {
      return;
    }
    var lang = step.getAttribute("data-guide-lang");
    syncToggles(step.getAttribute("data-guide-language"));
    if (lang && document.documentElement.getAttribute("lang") !== lang) {
      document.documentElement.setAttribute("lang", lang);
    }
    var heading = step.querySelector("h2");
    var siteTitle = step.getAttribute("data-guide-site-title");
    if (heading) {
      var title = heading.textContent.trim() + (siteTitle ? " · " + siteTitle : "");
      if (document.title !== title) {
        document.title = title;
      }
    }
    var id = step.getAttribute("data-step");
    if (!heading || id === lastStep) {
      return;
    }
    var first = lastStep === null;
    lastStep = id;
    heading.setAttribute("tabindex", "-1");
    if (!first) {
      heading.focus({ preventScroll: false });
    }
  }

  function swallowRepeatedClicks(event) {
    // event.detail counts the clicks of a double (triple...) click; keyboard activation is 0
    if (event.detail > 1 && event.target.closest &&
        event.target.closest(".guide .jupyter-button")) {
      event.stopImmediatePropagation();
      event.preventDefault();
    }
  }

  // One sync per frame, however many updates arrive in it: sync reads the layout (focus), so
  // running it inside each mutation callback would force a layout per widget update.
  var pending = false;

  function scheduleSync() {
    if (!pending) {
      pending = true;
      window.requestAnimationFrame(function () {
        pending = false;
        sync();
      });
    }
  }

  function start() {
    document.addEventListener("click", swallowRepeatedClicks, true);
    new MutationObserver(scheduleSync).observe(document.body, {
      subtree: true, childList: true, attributes: true,
      attributeFilter: ["data-step", "data-guide-lang", "data-guide-language",
        "data-guide-site-title", "class"],
    });
    sync();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();

// Case notes: a file over the size limit is refused in the page, before it is sent (the server
// drops the page's connection for a message that large, and the visitor would see nothing).
// The limit and the message, in the guide's language, come from the notes panel, which the
// guide renders with data-upload-limit and data-upload-too-large; the message appears in the
// panel's status line (.guide-notes-status), where the guide's own messages appear.
(function () {
  "use strict";

  function notesUploadSettings(button) {
    var panel = button.closest(".guide-panel");
    var source = panel && panel.querySelector("[data-upload-limit]");
    if (!source) {
      return null;
    }
    return {
      panel: panel,
      limit: Number(source.getAttribute("data-upload-limit")),
      message: source.getAttribute("data-upload-too-large") || "",
    };
  }

  function showNotesStatus(panel, message) {
    var status = panel.querySelector(".guide-notes-status");
    var region = status && (status.querySelector(".widget-html-content") || status);
    if (region) {
      var line = document.createElement("p");
      line.setAttribute("role", "status");
      line.textContent = message;
      region.replaceChildren(line);
    }
  }

  function refuseLargeFile(event) {
    var input = event.currentTarget;
    var settings = input.guideNotesButton && notesUploadSettings(input.guideNotesButton);
    if (!settings || !(settings.limit > 0)) {
      return;
    }
    var files = Array.prototype.slice.call(input.files || []);
    if (files.some(function (file) { return file.size > settings.limit; })) {
      event.stopImmediatePropagation();  // the widget never reads nor sends the file
      input.value = "";
      showNotesStatus(settings.panel, settings.message);
    }
  }

  // ipywidgets' file button opens the chooser through an <input type=file> kept outside the
  // document, so that input's change event reaches no document listener. While the notes
  // panel's button handles a click (it clicks that input right away), the input gets the
  // check above as a capturing listener, which runs before the widget's own.
  function watchNotesUpload(event) {
    var button = event.target.closest && event.target.closest(".guide .widget-upload");
    if (!button || !notesUploadSettings(button)) {
      return;
    }
    var click = HTMLInputElement.prototype.click;
    function restore() {
      if (HTMLInputElement.prototype.click === watched) {
        HTMLInputElement.prototype.click = click;
      }
    }
    function watched() {
      restore();
      if (this.type === "file") {
        this.guideNotesButton = button;
        if (!this.guideSizeChecked) {
          this.guideSizeChecked = true;
          this.addEventListener("change", refuseLargeFile, true);
        }
      }
      return click.apply(this, arguments);
    }
    HTMLInputElement.prototype.click = watched;
    window.setTimeout(restore, 0);
  }

  document.addEventListener("click", watchNotesUpload, true);
})();

// When the guide stops on the server (its kernel was culled after idleness or at the end of
// the longest visit, the server restarted, the kernel died), the page says so instead of
// going quiet: the alert region at the top of the guide (.guide-offline, which
// widgets/view.py renders empty, with the flow's texts in every language in a <template>
// next to it) gets what happened, Amazon's phone number and the Help → Need more help? →
// Contact us route, and a link that starts the guide again (the page's own path, without the
// query string); the controls that no longer work are disabled, the texts stay readable.
// How the end is noticed: the kernel connection of Voilà's widget manager
// (window.jupyterapp.widgetManager.kernel): the kernel's "shutdown_reply" (a shutdown by the
// server leaves the websocket open and quiet: that message is its last word), its status
// turning "dead" or "restarting" (a restarted kernel has lost the guide), its connection
// turning "disconnected"; and, should that not be reachable, the same seen on the kernel's
// websocket itself (its small messages, and its closing). When the connection drops, the page
// asks the server for its kernel (GET api/kernels/<id>, the request Voilà's page makes when
// it starts): gone means the guide has stopped; no answer, ask again a little later.
(function () {
  "use strict";
  var stopped = false;
  var leaving = false;
  var watched = null;
  var probing = false;
  var failures = 0;
  var retryTimer = null;
  var socketsOpen = 0;
  var MAX_FAILURES = 6;  // about 90 s without an answer from the server

  function settings() {
    var element = document.getElementById("jupyter-config-data");
    try {
      return element ? JSON.parse(element.textContent) : {};
    } catch (error) {
      return {};
    }
  }

  function disableControls(guide) {
    var controls = guide.querySelectorAll("button, input, select, textarea");
    for (var i = 0; i < controls.length; i++) {
      var control = controls[i];
      // the page's own controls keep working: copy buttons, the checklist, this notice
      if (control.closest(".widget-html-content")) {
        continue;
      }
      if (control.tagName === "TEXTAREA" || (control.tagName === "INPUT" &&
          /^(text|search|email|tel|url|)$/.test(control.type))) {
        control.readOnly = true;  // what was typed can still be selected and copied
      } else {
        control.disabled = true;
      }
      control.setAttribute("aria-disabled", "true");
    }
  }

  function showStopped() {
    if (stopped || leaving) {
      return;
    }
    var guide = document.querySelector(".guide");
    var region = guide && guide.querySelector(".guide-offline");
    var texts = guide && guide.querySelector("template.guide-offline-texts");
    if (!region || !texts) {
      return;
    }
    stopped = true;
    window.clearTimeout(retryTimer);
    guide.classList.add("guide-stopped");
    disableControls(guide);
    var content = document.importNode(texts.content, true);
    var reload = content.querySelector(".guide-offline-reload");
    if (reload) {
      reload.setAttribute("href", window.location.pathname);
    }
    region.replaceChildren(content);
    region.scrollIntoView({ block: "start" });
    region.focus({ preventScroll: true });
  }

  function askAgain() {
    window.clearTimeout(retryTimer);
    if (stopped || socketsOpen > 0) {
      return;
    }
    failures += 1;
    if (failures >= MAX_FAILURES) {
      showStopped();
      return;
    }
    retryTimer = window.setTimeout(probe, Math.min(30000, 2000 * Math.pow(2, failures - 1)));
  }

  function probe() {
    watchKernel();
    var config = settings();
    if (stopped || leaving || probing || !config.kernelId) {
      return;
    }
    probing = true;
    var url = (config.baseUrl || "/") + "api/kernels/" + encodeURIComponent(config.kernelId);
    window.fetch(url, { credentials: "same-origin", cache: "no-store",
                        headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 404 || response.status === 410) {
          showStopped();
          return null;
        }
        return response.ok ? response.json() : Promise.reject(response.status);
      })
      .then(function (model) {
        probing = false;
        if (model && model.execution_state === "dead") {
          showStopped();
        } else if (model) {
          failures = 0;  // the kernel is there: the connection is being made again
          if (socketsOpen === 0 && !watched) {
            retryTimer = window.setTimeout(probe, 5000);
          }
        }
      }, function () {
        probing = false;
        askAgain();
      });
  }

  function onStatus(status) {
    if (status === "dead" || status === "restarting" || status === "autorestarting") {
      showStopped();
    }
  }

  function onConnectionStatus(status) {
    if (status === "disconnected") {
      showStopped();
    } else if (status === "connecting") {
      probe();
    } else if (status === "connected") {
      failures = 0;
      window.clearTimeout(retryTimer);
    }
  }

  function watchKernel() {
    if (watched) {
      return true;
    }
    var app = window.jupyterapp;
    var manager = app && app.widgetManager;
    var kernel = manager && manager.kernel;
    if (!kernel || !kernel.statusChanged || !kernel.connectionStatusChanged) {
      return false;
    }
    watched = kernel;
    kernel.statusChanged.connect(function (_kernel, status) { onStatus(status); });
    if (kernel.iopubMessage) {
      kernel.iopubMessage.connect(function (_kernel, message) {
        if (message && message.header && message.header.msg_type === "shutdown_reply") {
          showStopped();
        }
      });
    }
    kernel.connectionStatusChanged.connect(function (_kernel, status) {
      onConnectionStatus(status);
    });
    onStatus(kernel.status);
    onConnectionStatus(kernel.connectionStatus);
    return true;
  }

  // The kernel's last words on its websocket: a shutdown's reply, a status of "dead" or
  // "restarting". Only small messages are read (these are a few hundred bytes).
  var LAST_WORDS = /"msg_type":\s*"shutdown_reply"|"execution_state":\s*"(dead|restarting|autorestarting)"/;
  var decoder = window.TextDecoder ? new window.TextDecoder() : null;

  function onKernelMessage(event) {
    var data = event.data;
    var text = "";
    if (typeof data === "string") {
      text = data.length < 8192 ? data : "";
    } else if (decoder && data instanceof ArrayBuffer && data.byteLength < 8192) {
      text = decoder.decode(new Uint8Array(data));
    }
    if (text && LAST_WORDS.test(text)) {
      showStopped();
    }
  }

  // The kernel's websocket, watched from its creation (Voilà's scripts run after this one).
  var NativeWebSocket = window.WebSocket;
  if (NativeWebSocket) {
    var KERNEL_CHANNELS = /\/api\/kernels\/[^/?#]+\/channels/;
    var GuideWebSocket = function (url, protocols) {
      var socket = arguments.length > 1 ? new NativeWebSocket(url, protocols)
        : new NativeWebSocket(url);
      if (KERNEL_CHANNELS.test(String(url))) {
        var opened = false;
        socket.addEventListener("open", function () {
          opened = true;
          socketsOpen += 1;
          failures = 0;
        });
        socket.addEventListener("message", onKernelMessage);
        socket.addEventListener("close", function () {
          if (opened) {
            opened = false;
            socketsOpen -= 1;
          }
          probe();
        });
      }
      return socket;
    };
    GuideWebSocket.prototype = NativeWebSocket.prototype;
    ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (name) {
      GuideWebSocket[name] = NativeWebSocket[name];
    });
    window.WebSocket = GuideWebSocket;
  }

  // Voilà's app exists once its scripts have run; look for it until the guide is shown.
  var tries = 0;
  var finder = window.setInterval(function () {
    tries += 1;
    if (watchKernel() || stopped || tries > 240) {
      window.clearInterval(finder);
    }
  }, 250);

  function leave() {
    leaving = true;  // Voilà closes the kernel connection as the page unloads
  }
  window.addEventListener("beforeunload", leave);
  window.addEventListener("pagehide", leave);
  window.addEventListener("pageshow", function () { leaving = false; });
})();

// The call sheet's print button (.guide-print, rendered by widgets/callsheet.py): the browser's
// own print dialog (print, or save as PDF), with <html> marked guide-print-sheet so that the
// print stylesheet (guide.css) shows the call sheet alone. The browser's own Print while the
// sheet is open does the same; the mark goes when printing ends.
(function () {
  "use strict";
  var MARK = "guide-print-sheet";

  function sheetShown() {
    var sheet = document.querySelector(".guide .guide-callsheet");
    return !!(sheet && sheet.getClientRects().length);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest(".guide .guide-print");
    if (!button) {
      return;
    }
    event.preventDefault();
    document.documentElement.classList.add(MARK);
    window.print();
  });
  window.addEventListener("beforeprint", function () {
    if (sheetShown()) {
      document.documentElement.classList.add(MARK);
    }
  });
  window.addEventListener("afterprint", function () {
    document.documentElement.classList.remove(MARK);
  });
})();
