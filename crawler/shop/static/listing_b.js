// Layout b: tiles from /api/v2/listing, numbered pages only.
(function () {
  var cfg = JSON.parse(document.getElementById("cfg").textContent);
  var tiles = document.getElementById("tiles"), pager = document.getElementById("pager");
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  var xhr = new XMLHttpRequest();
  xhr.open("GET", "/api/v2/listing?cat=" + cfg.cat + "&col=" + cfg.col + "&page=" + cfg.page);
  xhr.onload = function () {
    var d;
    try { if (xhr.status !== 200) throw new Error("HTTP " + xhr.status); d = JSON.parse(xhr.responseText); }
    catch (e) { tiles.dataset.status = "failed"; return; }
    tiles.innerHTML = d.results.map(function (r) {
      return '<article class="tile"><a href="' + esc(r.href) + '"><img class="pic" data-src="' + esc(r.thumb) + '" src="/static/blank.gif" alt="">' +
        '<div class="name">' + esc(r.name) + '</div></a><div class="amount">' + esc(r.amount) + "</div></article>";
    }).join("") || '<p class="none">Aucun article</p>';
    var h = "";
    for (var i = 1; i <= d.pages && d.pages > 1; i++) h += i === d.page ? "<b>" + i + "</b> " : '<a href="?page=' + i + '">' + i + "</a> ";
    if (d.page < d.pages) h += '<a class="suivant" href="?page=' + (d.page + 1) + '">&raquo;</a>';
    pager.innerHTML = h;
    if (window.sketchshopLazy) window.sketchshopLazy(tiles);
    tiles.dataset.status = "ok";
  };
  xhr.onerror = function () { tiles.dataset.status = "failed"; };
  xhr.send();
})();
