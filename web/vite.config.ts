// The dashboard's build: one script and one stylesheet under fixed names (no content
// hashes), so that `web/dist/` is the same bytes on every machine and the server can
// embed it with a fixed list of files (src/grpc/dashboard.rs).
import { defineConfig } from "vite";

export default defineConfig({
  base: "/",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
    modulePreload: false,
    cssCodeSplit: false,
    assetsInlineLimit: 0,
    rollupOptions: {
      output: {
        entryFileNames: "assets/dashboard.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/dashboard[extname]",
      },
    },
  },
});
