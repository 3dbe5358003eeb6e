// Lazy images: swap data-src into src when the image scrolls into view.
window.sketchshopLazy = function (root) {
  var imgs = (root || document).querySelectorAll("img[data-src]");
  var show = function (img) { if (img.dataset.src && img.getAttribute("src") !== img.dataset.src) img.src = img.dataset.src; };
  if (!("IntersectionObserver" in window)) { imgs.forEach(show); return; }
  var io = new IntersectionObserver(function (entries) {
    entries.forEach(function (e) { if (e.isIntersecting) { show(e.target); io.unobserve(e.target); } });
  }, { rootMargin: "200px" });
  imgs.forEach(function (img) { io.observe(img); });
};
window.sketchshopLazy(document);
