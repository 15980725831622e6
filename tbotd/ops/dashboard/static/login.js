// Shows the "wrong token" line after a refused sign-in (the server redirects with ?failed=1).
"use strict";
if (new URLSearchParams(location.search).has("failed")) {
  document.getElementById("failed").hidden = false;
}
