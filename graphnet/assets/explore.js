// The page Graph.render("model.html") writes (graphnet/render_html.py): details on
// click, groups that expand and collapse, #node=NAME; svg-pan-zoom pans and zooms.
// By keyboard: Tab to a node, group or synapse, Enter or Space for what a click
// does; + and - zoom, 0 fits, Escape closes the details.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("graphnet-data").textContent);
  var views = Array.prototype.slice.call(document.querySelectorAll(".gn-view"));
  var panel = document.getElementById("gn-details");
  var toggle = null, place = document.getElementById("gn-toggle-place");
  if (data.names.length > 1) {
    toggle = document.createElement("button");
    toggle.id = "gn-toggle"; toggle.type = "button"; place.appendChild(toggle);
  } else if (data.tooBig) {
    place.textContent = "groups stay collapsed: the graph is too large to expand here";
  }
  var zoomers = [], current = -1, selected = null;

  function svgOf(k) { return views[k].querySelector("svg"); }

  function show(k) {
    if (current === k) { return; }
    views.forEach(function (view, i) { view.hidden = i !== k; });
    current = k;
    if (!zoomers[k]) {
      zoomers[k] = svgPanZoom(svgOf(k), { zoomScaleSensitivity: 0.3, minZoom: 0.05, maxZoom: 40,
                                          controlIconsEnabled: true, dblClickZoomEnabled: false });
    } else {
      zoomers[k].resize(); zoomers[k].fit(); zoomers[k].center();
    }
    if (toggle) {
      toggle.textContent = data.names[k] === "collapsed" ? "Expand all groups" : "Collapse all groups";
    }
  }

  function elementFor(k, item) {
    return svgOf(k).querySelector('[id="L' + k + "_i" + item + '"]');
  }

  function extent(element) {
    // ``element``'s box in the coordinates of svg-pan-zoom's viewport group.
    // Read from the DOM relative to that group, so it holds even while
    // svg-pan-zoom's last pan or zoom waits for the next frame to be drawn.
    var group = svgOf(current).querySelector(".svg-pan-zoom_viewport");
    var m = group.getCTM().inverse().multiply(element.getCTM()), b = element.getBBox();
    var xs = [b.x, b.x + b.width].map(function (x) { return m.a * x + m.e; });
    var ys = [b.y, b.y + b.height].map(function (y) { return m.d * y + m.f; });
    return { x: Math.min.apply(null, xs), y: Math.min.apply(null, ys),
             width: Math.abs(xs[1] - xs[0]), height: Math.abs(ys[1] - ys[0]) };
  }

  function visible(element) {
    var zoomer = zoomers[current], sizes = zoomer.getSizes(), pan = zoomer.getPan(), box = extent(element);
    var left = pan.x + sizes.realZoom * box.x, top = pan.y + sizes.realZoom * box.y;
    return left >= 0 && top >= 0 && left + sizes.realZoom * box.width <= sizes.width
      && top + sizes.realZoom * box.height <= sizes.height;
  }

  function focus(element, share) {
    // Put ``element`` in the middle of the view; with ``share``, zoom until
    // it fills that share of the view (a group's frame may shrink, a node
    // only grows, at most fourfold).
    var zoomer = zoomers[current], sizes = zoomer.getSizes(), box = extent(element);
    if (share && box.width > 0 && box.height > 0) {
      var scale = sizes.realZoom;
      var factor = Math.min(share * sizes.width / (scale * box.width), share * sizes.height / (scale * box.height), 4);
      if (factor > 1.05 || (element.classList.contains("cluster") && factor < 0.95)) {
        zoomer.zoomBy(factor);
        sizes = zoomer.getSizes();
      }
    }
    zoomer.pan({ x: sizes.width / 2 - sizes.realZoom * (box.x + box.width / 2),
                 y: sizes.height / 2 - sizes.realZoom * (box.y + box.height / 2) });
  }

  function select(element, item) {
    if (selected) { selected.classList.remove("gn-selected"); }
    selected = element;
    if (element) { element.classList.add("gn-selected"); }
    details(data.items[item]);
    // The panel narrows the view: bring what was clicked back into it.
    if (element && !visible(element)) { focus(element); }
  }

  function details(entry) {
    panel.hidden = false;
    panel.querySelector("h2").textContent = entry.title;
    panel.querySelector(".kind").textContent = entry.type;
    var body = panel.querySelector("tbody");
    body.textContent = "";
    entry.rows.forEach(function (row) {
      var tr = document.createElement("tr");
      row.forEach(function (cell) { var td = document.createElement("td"); td.textContent = cell; tr.appendChild(td); });
      body.appendChild(tr);
    });
    if (zoomers[current]) { zoomers[current].resize(); }
  }

  function other(name) { return data.names.indexOf(name); }

  function switchTo(k, item) {
    show(k);
    var element = elementFor(k, item);
    if (element) {
      select(element, item); focus(element, element.classList.contains("cluster") ? 0.9 : 0.2);
      element.focus({ preventScroll: true });  // a keyboard user goes on from there
    }
  }

  function activate(target, k) {
    if (target.classList.contains("edge")) {
      var title = target.querySelector("title").textContent, item = data.edges[k][title];
      if (item !== undefined) { select(target, item); }
      return;
    }
    var match = /_i(\d+)$/.exec(target.id);
    if (!match) { return; }
    var item = +match[1], entry = data.items[item];
    if (entry.type === "group" && data.names[k] === "collapsed" && other("expanded") >= 0) {
      switchTo(other("expanded"), item);   // a group's box: expand it
    } else if (entry.type === "group" && data.names[k] === "expanded") {
      switchTo(other("collapsed"), item);  // a group's frame: collapse it
    } else {
      select(target, item);
    }
  }

  views.forEach(function (view, k) {
    Array.prototype.forEach.call(svgOf(k).querySelectorAll(".node, .cluster, .edge"), function (element) {
      var title = element.querySelector("title");
      element.setAttribute("tabindex", "0");
      element.setAttribute("role", "button");
      element.setAttribute("aria-label", (title ? title.textContent : "") + ": details");
      element.addEventListener("focus", function () {
        if (current === k && zoomers[k] && !visible(element)) { focus(element); }
      });
    });
    view.addEventListener("click", function (event) {
      var target = event.target.closest(".node, .cluster, .edge");
      if (target) { activate(target, k); }
    });
    view.addEventListener("keydown", function (event) {
      var target = event.target.closest && event.target.closest(".node, .cluster, .edge");
      if (target && (event.key === "Enter" || event.key === " ")) {
        event.preventDefault();
        activate(target, k);
      }
    });
  });

  if (toggle) {
    toggle.addEventListener("click", function () { close(); show(current === 0 ? 1 : 0); });
  }
  document.getElementById("gn-fit").addEventListener("click", function () {
    zoomers[current].resize(); zoomers[current].fit(); zoomers[current].center();
  });
  function close() {
    panel.hidden = true;
    if (selected) { selected.classList.remove("gn-selected"); selected = null; }
    if (zoomers[current]) { zoomers[current].resize(); }
  }
  panel.querySelector(".close").addEventListener("click", close);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape") { close(); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }  // the browser's own zoom, and the like
    if (event.target.closest && event.target.closest("button")) { return; }
    if (event.key === "+" || event.key === "=") { zoomers[current].zoomIn(); }
    else if (event.key === "-") { zoomers[current].zoomOut(); }
    else if (event.key === "0") { zoomers[current].resize(); zoomers[current].fit(); zoomers[current].center(); }
  });
  window.addEventListener("resize", function () { zoomers[current].resize(); });

  show(data.start);
  var wanted = /^#node=(.+)$/.exec(window.location.hash);
  if (wanted) {
    var name = decodeURIComponent(wanted[1]);
    data.items.forEach(function (entry, item) {
      if (entry.type === "node" && entry.name === name) {
        var element = elementFor(current, item);
        if (!element) {  // a member of a collapsed group: open the expanded layout
          var k = other("expanded");
          if (k >= 0) { show(k); element = elementFor(k, item); }
        }
        select(element, item);
        zoomers[current].fit(); zoomers[current].center();
        if (element) { focus(element, 0.2); }
      }
    });
  }
  document.body.setAttribute("data-ready", "yes");
})();
