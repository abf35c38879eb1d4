// Page behaviour for the guide in Voilà, for people using screen readers or a keyboard:
// - <html lang> follows the guide's language (the step carries data-guide-lang);
// - when the step changes, focus moves to the new step's heading, so it is announced and
//   keyboard users continue from there instead of from the top of the page.
(function () {
  "use strict";
  var lastStep = null;

  function sync() {
    var step = document.querySelector(".guide [data-guide-lang]");
    if (!step) {
      return;
    }
    var lang = step.getAttribute("data-guide-lang");
    if (lang && document.documentElement.getAttribute("lang") !== lang) {
      document.documentElement.setAttribute("lang", lang);
    }
    var heading = step.querySelector("h2");
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

  function start() {
    new MutationObserver(sync).observe(document.body, {
      subtree: true, childList: true, attributes: true,
      attributeFilter: ["data-step", "data-guide-lang"],
    });
    sync();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
