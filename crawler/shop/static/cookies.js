// Cookie banner: shown until accepted; the choice is remembered in a cookie.
(function () {
  var accepted = document.cookie.indexOf("consent=1") >= 0;
  var banner = document.getElementById("cookie-banner") || document.getElementById("consent");
  var button = document.getElementById("accept-cookies") || document.getElementById("consent-ok");
  if (!banner || !button) return;
  if (accepted) { banner.hidden = true; banner.style.display = "none"; return; }
  banner.hidden = false; banner.style.display = "";
  button.addEventListener("click", function (e) {
    e.preventDefault();
    document.cookie = "consent=1; path=/; max-age=31536000; SameSite=Lax";
    banner.hidden = true; banner.style.display = "none";
  });
})();
