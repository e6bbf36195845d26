// resnet-lab: loaded after require.js and before the widget manager (embed-amd.js). tools/fetch_web_assets.py copies
// it into the web assets folder. The manager's bundle finds its font files (the icons of widgets) next to the URL of
// its AMD modules, which require.js would otherwise place next to the page; point those module names at the folder
// that holds embed-amd.js and its fonts.
(function () {
  "use strict";
  var dist = new URL("html-manager/dist", document.currentScript.src).href;
  window.require.config({ paths: { "@jupyter-widgets/html-manager/dist": dist, "@jupyter-widgets": dist } });
})();
