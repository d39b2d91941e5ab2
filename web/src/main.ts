// Entry point: the page is static HTML (index.html) and app.css; everything else starts here.
import { App } from "./ui";

new App();
