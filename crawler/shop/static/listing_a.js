// Layout a: the grid is rendered from /api/products; "load more" or numbered pages.
(function () {
  var cfg = JSON.parse(document.getElementById("listing-config").textContent);
  var grid = document.getElementById("grid"), more = document.getElementById("load-more");
  var nav = document.getElementById("pagination"), empty = document.getElementById("empty");
  var offset = cfg.mode === "pages" ? (cfg.page - 1) * cfg.size : 0, total = 0;
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[c]; }); }
  function card(p) {
    var chips = Object.keys(p.attributes).map(function (k) { return '<li data-attr="' + esc(k) + '">' + esc(p.attributes[k]) + "</li>"; }).join("");
    return '<div class="product-card" data-product-id="' + esc(p.id) + '">' +
      '<a class="card-link" href="' + esc(p.url) + '"><img class="lazy" src="/static/blank.gif" data-src="' + esc(p.images[0]) + '" alt="">' +
      '<h3 class="card-title">' + esc(p.title) + "</h3></a>" +
      '<span class="brand">' + esc(p.brand) + "</span>" +
      '<span class="price" data-price="' + esc(p.price) + '" data-currency="' + esc(p.currency) + '">' + esc(p.symbol) + esc(p.price) + "</span>" +
      '<span class="swatch">' + esc(p.colour) + "</span>" +
      '<ul class="chips">' + chips + "</ul>" +
      '<a class="wishlist" href="/account/wishlist?add=' + esc(p.id) + '">&#9825;</a></div>';
  }
  function pager() {
    var pages = Math.max(1, Math.ceil(total / cfg.size)), html = "";
    if (pages < 2) return;
    var base = "/c/" + cfg.category + "?" + (cfg.colour ? "colour=" + cfg.colour + "&" : "");
    for (var i = 1; i <= pages; i++) html += i === cfg.page ? '<span class="current">' + i + "</span>" : '<a class="page" href="' + base + "page=" + i + '">' + i + "</a>";
    if (cfg.page < pages) html += '<a rel="next" class="next" href="' + base + "page=" + (cfg.page + 1) + '">Next</a>';
    nav.innerHTML = html; nav.hidden = false;
  }
  function load() {
    grid.dataset.state = "loading"; more.disabled = true;
    var url = "/api/products?category=" + cfg.category + (cfg.colour ? "&colour=" + cfg.colour : "") + "&offset=" + offset + "&limit=" + cfg.size;
    fetch(url).then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); }).then(function (d) {
      total = d.total;
      grid.insertAdjacentHTML("beforeend", d.items.map(card).join(""));
      offset += d.items.length;
      grid.dataset.loaded = grid.querySelectorAll(".product-card").length; grid.dataset.total = total;
      empty.hidden = total > 0;
      if (cfg.mode === "more") { more.hidden = offset >= total; more.disabled = false; } else pager();
      if (window.sketchshopLazy) window.sketchshopLazy(grid);
      grid.dataset.state = "done";
    }).catch(function (e) { grid.dataset.state = "error"; grid.dataset.error = String(e); more.disabled = false; });
  }
  more.addEventListener("click", load);
  load();
})();
