import { defineConfig } from "vite";
import preact from "@preact/preset-vite";

// The built files are embedded in the server binary (crates/hayabusa-http/src/web.rs):
// hashed names under /assets/, no inline scripts or styles (the CSP forbids them).
export default defineConfig({
  plugins: [preact()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsDir: "assets",
    modulePreload: { polyfill: false },
    cssCodeSplit: false,
    sourcemap: false,
    target: "es2022",
  },
});
