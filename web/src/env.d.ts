// Stylesheets are imported for their side effect: Vite bundles them into dashboard.css.
declare module "*.css";
