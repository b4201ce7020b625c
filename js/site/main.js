// Entry of the static site written by `cellucid-nb publish` (bundled to viewer/site.js).
import { createSite } from "./site.js";

const site = createSite({ document, location, history, window });
/** @type {any} */ (window).cellucidSite = site;
site.start();
