/* retbench report: thumbnails, tabs, sortable tables, tooltips, PR-curve cursor. Text is only ever set with
   textContent (never innerHTML), so labels and paths stay text. */
(function () {
  "use strict";
  var thumbs = {};
  var source = document.getElementById("thumbs");
  if (source) { thumbs = JSON.parse(source.textContent); }
  document.querySelectorAll("img[data-t]").forEach(function (img) {
    var data = thumbs[img.getAttribute("data-t")];
    if (data) { img.src = "data:image/jpeg;base64," + data; }
  });

  /* tooltip: one floating element, text from data-tip */
  var tip = document.getElementById("tip");
  function showTip(text, x, y) {
    tip.textContent = text;
    tip.style.display = "block";
    var w = tip.offsetWidth, h = tip.offsetHeight;
    var left = Math.min(x + 14, window.innerWidth - w - 8);
    var top = y + 16 + h > window.innerHeight ? y - h - 12 : y + 16;
    tip.style.left = Math.max(4, left) + "px";
    tip.style.top = Math.max(4, top) + "px";
  }
  function hideTip() { tip.style.display = "none"; }
  document.addEventListener("mouseover", function (ev) {
    var el = ev.target.closest ? ev.target.closest("[data-tip]") : null;
    if (el) { showTip(el.getAttribute("data-tip"), ev.clientX, ev.clientY); }
  });
  document.addEventListener("mousemove", function (ev) {
    if (tip.style.display === "block" && ev.target.closest && ev.target.closest("[data-tip]")) {
      showTip(tip.textContent, ev.clientX, ev.clientY);
    }
  });
  document.addEventListener("mouseout", function (ev) {
    var el = ev.target.closest ? ev.target.closest("[data-tip]") : null;
    if (el && !el.contains(ev.relatedTarget)) { hideTip(); }
  });

  /* tabs: panels are visible without JS; with it, one per group */
  document.querySelectorAll(".tabbed").forEach(function (group) {
    var buttons = group.querySelectorAll(":scope > .tabs > button");
    var panels = group.querySelectorAll(":scope > .panel");
    function select(i) {
      buttons.forEach(function (b, j) { b.setAttribute("aria-selected", i === j ? "true" : "false"); });
      panels.forEach(function (p, j) { p.hidden = i !== j; });
    }
    buttons.forEach(function (b, i) { b.addEventListener("click", function () { select(i); }); });
    select(0);
  });

  /* sortable tables: click a header; cells sort by data-v (numbers) or by text */
  document.querySelectorAll("table.sortable").forEach(function (table) {
    var headers = table.querySelectorAll("thead th");
    headers.forEach(function (th, col) {
      th.setAttribute("tabindex", "0");
      function sort() {
        var ascending = th.getAttribute("aria-sort") !== "ascending";
        if (!th.hasAttribute("aria-sort") && th.classList.contains("n")) { ascending = false; }
        headers.forEach(function (h) { h.removeAttribute("aria-sort"); });
        th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
        var body = table.tBodies[0];
        var rows = Array.prototype.slice.call(body.rows);
        rows.sort(function (a, b) {
          var x = a.cells[col], y = b.cells[col];
          var vx = x.getAttribute("data-v"), vy = y.getAttribute("data-v");
          var r;
          if (vx !== null && vy !== null) {
            var fx = vx === "" ? -Infinity : parseFloat(vx), fy = vy === "" ? -Infinity : parseFloat(vy);
            r = fx === fy ? 0 : (fx < fy ? -1 : 1);
          } else {
            r = x.textContent.localeCompare(y.textContent);
          }
          return ascending ? r : -r;
        });
        rows.forEach(function (row) { body.appendChild(row); });
      }
      th.addEventListener("click", sort);
      th.addEventListener("keydown", function (ev) { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); sort(); } });
    });
  });

  /* PR curves: a cursor that reads every encoder's precision at the hovered recall */
  document.querySelectorAll(".pr[data-curves]").forEach(function (box) {
    var spec = JSON.parse(box.getAttribute("data-curves"));
    var svg = box.querySelector("svg");
    var cursor = svg.querySelector(".cursor");
    svg.addEventListener("mousemove", function (ev) {
      var rect = svg.getBoundingClientRect();
      var x = (ev.clientX - rect.left) * spec.width / rect.width;
      var r = (x - spec.left) / spec.plot;
      if (r < 0 || r > 1) { cursor.style.visibility = "hidden"; hideTip(); return; }
      var i = Math.round(r * (spec.recall.length - 1));
      var px = spec.left + spec.recall[i] * spec.plot;
      cursor.setAttribute("x1", px); cursor.setAttribute("x2", px);
      cursor.style.visibility = "visible";
      var lines = ["recall " + spec.recall[i].toFixed(2)];
      spec.curves.forEach(function (c) {
        var p = c.precision[i];
        lines.push(c.name + ": precision " + (p === null ? "n/a" : p.toFixed(3)));
      });
      showTip(lines.join("\n"), ev.clientX, ev.clientY);
    });
    svg.addEventListener("mouseleave", function () { cursor.style.visibility = "hidden"; hideTip(); });
  });

  /* highlight the section in view */
  var links = {};
  document.querySelectorAll("nav.toc a").forEach(function (a) { links[a.getAttribute("href").slice(1)] = a; });
  if ("IntersectionObserver" in window) {
    var observer = new IntersectionObserver(function (entries) {
      entries.forEach(function (entry) {
        if (entry.isIntersecting && links[entry.target.id]) {
          Object.keys(links).forEach(function (k) { links[k].classList.remove("active"); });
          links[entry.target.id].classList.add("active");
        }
      });
    }, { rootMargin: "-30% 0px -60% 0px" });
    document.querySelectorAll("section.block[id]").forEach(function (s) { observer.observe(s); });
  }
})();
