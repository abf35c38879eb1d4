// The guide's page script (guide.js, the same as in Voilà) on Solara's page. This runs first:
// - it notes the kernel id of Solara's websocket (/jupyter/api/kernels/<id>/channels) in the
//   page's #jupyter-config-data, where guide.js looks for it when the connection drops: it then
//   asks the server for that kernel (GET /jupyter/api/kernels/<id>, 404 once the visit ended)
//   and shows the guide's bilingual "the guide has stopped" notice;
// - once the guide has stopped, Solara's own overlays (its English "Server disconnected"
//   spinner, its refresh dialog) are hidden: the guide's notice says what to do, in both
//   languages.
(function () {
  "use strict";
  var KERNEL_CHANNELS = /\/jupyter\/api\/kernels\/([^/?#]+)\/channels/;
  var style = document.createElement("style");
  style.textContent =
    "html.guide-host-stopped .v-overlay, html.guide-host-stopped .v-dialog__content," +
    " html.guide-host-stopped .v-alert { display: none !important; }";
  document.head.appendChild(style);

  function noteKernel(id) {
    var element = document.getElementById("jupyter-config-data");
    if (!element) {
      return;
    }
    try {
      var config = JSON.parse(element.textContent);
      if (config.kernelId !== id) {
        config.kernelId = id;
        element.textContent = JSON.stringify(config);
      }
    } catch (error) {
      // Solara's configuration is not JSON: guide.js then does not probe
    }
  }

  function watchStopped() {
    var observer = new MutationObserver(function () {
      if (document.querySelector(".guide.guide-stopped")) {
        observer.disconnect();  // the class below is a mutation too
        document.documentElement.classList.add("guide-host-stopped");
      }
    });
    observer.observe(document.documentElement, { subtree: true, attributes: true,
                                           attributeFilter: ["class"] });
  }

  var NativeWebSocket = window.WebSocket;
  if (NativeWebSocket) {
    var HostWebSocket = function (url, protocols) {
      var socket = arguments.length > 1 ? new NativeWebSocket(url, protocols)
        : new NativeWebSocket(url);
      var match = KERNEL_CHANNELS.exec(String(url));
      if (match) {
        noteKernel(decodeURIComponent(match[1]));
      }
      return socket;
    };
    HostWebSocket.prototype = NativeWebSocket.prototype;
    ["CONNECTING", "OPEN", "CLOSING", "CLOSED"].forEach(function (name) {
      HostWebSocket[name] = NativeWebSocket[name];
    });
    window.WebSocket = HostWebSocket;
  }
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", watchStopped);
  } else {
    watchStopped();
  }
})();
