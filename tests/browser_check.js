// Injected as the first script of every page tests/browser_check.py opens in headless Chromium. It records console
// errors, uncaught exceptions and failed resource loads from the start; after the load event it waits for MathJax
// and the widget manager, measures the page and writes a JSON report into the DOM (script#browser-check-report),
// which `chromium --dump-dom` hands back. The Python side turns the report into failures.
(function () {
  "use strict";
  var report = { console: [], resources: [] };
  var started = Date.now();

  function short(text, n) {
    text = String(text);
    return text.length > (n || 300) ? text.slice(0, n || 300) + "..." : text;
  }

  var originalError = console.error;
  console.error = function () {
    report.console.push("console.error: " + short(Array.prototype.map.call(arguments, String).join(" ")));
    return originalError.apply(console, arguments);
  };
  window.addEventListener("error", function (event) {
    var target = event.target;
    if (target && target !== window && target.tagName) {
      report.resources.push(target.tagName.toLowerCase() + " " + short(target.src || target.href || "", 200));
    } else {
      report.console.push("uncaught error: " + short(event.message) +
        (event.filename ? " (" + event.filename.split("/").pop() + ":" + event.lineno + ")" : ""));
    }
  }, true);
  window.addEventListener("unhandledrejection", function (event) {
    var reason = event.reason;
    report.console.push("unhandled promise rejection: " + short(reason && (reason.stack || reason.message) || reason));
  });
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("img[loading=lazy]").forEach(function (img) { img.loading = "eager"; });
  });

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  async function waitFor(condition, ms) {
    var end = Date.now() + ms;
    while (!condition() && Date.now() < end) { await sleep(50); }
    return condition();
  }

  var WIDGET_VIEW = 'script[type="application/vnd.jupyter.widget-view+json"]';

  function widgetViewRendered(script) {
    var parent = script.parentElement;
    var node = parent && parent.querySelector(".widget-subarea .jupyter-widgets, .widget-subarea .lm-Widget");
    return !!node && !/Error displaying widget/.test(parent.textContent);
  }

  function visible(element) {
    return element.getClientRects().length > 0 && getComputedStyle(element).visibility !== "hidden";
  }

  // The page's rendered text with some elements left out (display:none, so innerText keeps the line structure).
  function textWithout(selector) {
    var style = document.createElement("style");
    style.textContent = ".browser-check-hide { display: none !important; }";
    document.head.appendChild(style);
    var hidden = Array.prototype.slice.call(document.querySelectorAll(selector));
    hidden.forEach(function (element) { element.classList.add("browser-check-hide"); });
    var text = document.body.innerText;
    hidden.forEach(function (element) { element.classList.remove("browser-check-hide"); });
    style.remove();
    return text;
  }

  function charWidth(element) {
    var probe = document.createElement("span");
    probe.textContent = "M".repeat(40);
    probe.style.whiteSpace = "pre";
    element.appendChild(probe);
    var width = probe.getBoundingClientRect().width / 40;
    probe.remove();
    return width || 8;
  }

  // The text lines of a block that are wider than the room the block gives them.
  function longLines(element) {
    var style = getComputedStyle(element);
    var room = element.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
    var fit = Math.floor(room / charWidth(element) + 0.01);
    var lines = [];
    element.textContent.split("\n").forEach(function (line, index) {
      line = line.replace(/\s+$/, "").replace(/\t/g, "    ");
      if (line.length > fit) { lines.push({ line: index + 1, length: line.length, text: short(line, 100) }); }
    });
    return { fit: fit, lines: lines };
  }

  function where(element) {
    var cell = element.closest(".cell, .jp-Cell, section, table");
    var heading = null;
    var section = element.closest("section");
    if (section) { heading = section.querySelector("h1, h2, h3, h4"); }
    return short((heading ? heading.textContent.replace(/[#¶]/g, "").trim() : "") +
      (cell && cell.id ? " #" + cell.id : ""), 80);
  }

  function overflows() {
    var found = [];
    var seen = new Set();
    document.querySelectorAll("pre, div.highlight, table").forEach(function (element) {
      if (!visible(element) || element.closest(".browser-check-ignore")) { return; }
      var box = element.tagName === "TABLE" ? element.parentElement : element;
      var content = element.tagName === "TABLE" ? element.getBoundingClientRect().width : element.scrollWidth;
      if (content <= box.clientWidth + 1) { return; }
      var pre = element.tagName === "PRE" ? element : element.querySelector("pre");
      if (pre && seen.has(pre)) { return; }
      if (pre) { seen.add(pre); }
      var isOutput = !!element.closest(".cell_output, .jp-OutputArea, .output");
      var entry = {
        kind: element.tagName === "TABLE" ? "table" : (isOutput ? "output" : "code"),
        where: where(element), width: Math.round(content), room: box.clientWidth,
      };
      if (pre) {
        var long = longLines(pre);
        entry.fit = long.fit;
        entry.lines = long.lines.slice(0, 8);
        entry.more = Math.max(0, long.lines.length - 8);
      } else {
        entry.text = short(element.innerText.split("\n")[0], 100);
      }
      found.push(entry);
    });
    return found;
  }

  // Output lines that wrap because they are wider than the page (not cut off, but hard to read as a table).
  function wrappedOutputs() {
    var found = [];
    document.querySelectorAll(".cell_output pre, .jp-OutputArea-output pre").forEach(function (pre) {
      if (!visible(pre) || !/pre-wrap|break-spaces/.test(getComputedStyle(pre).whiteSpace)) { return; }
      var long = longLines(pre);
      if (long.lines.length) {
        found.push({ where: where(pre), fit: long.fit, lines: long.lines.slice(0, 5),
                     more: Math.max(0, long.lines.length - 5) });
      }
    });
    return found;
  }

  function collect() {
    var report_ = report;
    report_.elapsed_ms = Date.now() - started;
    report_.height = Math.max(document.documentElement.scrollHeight, document.body.scrollHeight);
    report_.width = window.innerWidth;
    report_.mathjax = window.MathJax ? (window.MathJax.version || "loaded") : null;
    report_.math_elements = document.querySelectorAll(".math, .MathJax_Preview, script[type^='math/tex']").length;
    report_.mjx = document.querySelectorAll("mjx-container").length;
    report_.math_errors = Array.prototype.map.call(document.querySelectorAll("mjx-merror"), function (e) {
      return short(e.getAttribute("data-mjx-error") || e.textContent, 120);
    });
    report_.images = Array.prototype.filter.call(document.images, function (img) {
      return !(img.complete && img.naturalWidth > 0);
    }).map(function (img) { return short(img.getAttribute("src") || "", 120); });
    report_.fonts = [];
    if (document.fonts) {
      document.fonts.forEach(function (font) {
        if (font.status === "error") { report_.fonts.push(font.family); }
      });
    }
    report_.network = performance.getEntriesByType("resource").map(function (entry) { return entry.name; })
      .filter(function (name) { return /^(https?|wss?):/i.test(name); });
    // Visible text, outside code, for raw math; outside code cells' input and highlighted Markdown, for MyST.
    report_.text_math = textWithout("script, style, pre, code, .highlight, mjx-container, mjx-assistive-mml, " +
      "textarea, .cell_input, .jp-CodeCell .jp-InputArea, math");
    report_.text_markup = textWithout("script, style, code, .cell_input, .jp-CodeCell .jp-InputArea, mjx-container, " +
      "mjx-assistive-mml, math, .highlight-markdown, .highlight-md, .highlight-myst");
    report_.fenced_directives = Array.prototype.map.call(
      document.querySelectorAll("code[class*='language-{'], pre[class*='language-{']"),
      function (code) {
        var lang = (code.className.match(/language-(\{[^\s]*)/) || ["", "{?}"])[1];
        return lang + " " + short(code.textContent.split("\n")[0], 80);
      });
    var views = document.querySelectorAll(WIDGET_VIEW);
    report_.widget_views = views.length;
    report_.widget_state = document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-state+json"]').length;
    report_.widgets_rendered = Array.prototype.filter.call(views, widgetViewRendered).length;
    report_.overflows = overflows();
    report_.wrapped_outputs = wrappedOutputs();
    report_.launch_links = Array.prototype.map.call(document.querySelectorAll("a[href]"), function (a) {
      return a.href;
    }).filter(function (href) { return /colab\.research\.google\.com/.test(href); }).length;
    var out = document.createElement("script");
    out.type = "application/json";
    out.id = "browser-check-report";
    out.textContent = JSON.stringify(report_).replace(/</g, "\\u003c");
    document.body.appendChild(out);
  }

  async function finish() {
    try {
      document.querySelectorAll("details").forEach(function (d) { d.open = true; });
      var mj = window.MathJax;
      if (mj && mj.startup && mj.startup.promise) { await mj.startup.promise; }
      if (mj && mj.typesetPromise) { await mj.typesetPromise(); }
      if (document.querySelector(WIDGET_VIEW)) {
        await waitFor(function () {
          return Array.prototype.every.call(document.querySelectorAll(WIDGET_VIEW), widgetViewRendered);
        }, 8000);
      }
      await sleep(300);
    } catch (error) {
      report.console.push("while waiting for MathJax/widgets: " + short(error && (error.stack || error)));
    }
    collect();
  }

  window.addEventListener("load", function () { setTimeout(finish, 100); });
})();
