/// <reference types="vitest/config" />
import tailwindcss from "@tailwindcss/vite";
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// The server serves dist/ at "/"; `npm run dev` proxies the API and the socket to it.
declare const process: { env: Record<string, string | undefined> };
const server = process.env.LIVETUTOR_URL ?? "http://127.0.0.1:8000";

export default defineConfig({
  plugins: [react(), tailwindcss()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    target: "es2022",
    // The manifest tells the bundle budget (scripts/check-size.mjs) the entry chunk from lazy ones.
    manifest: true,
    // Fonts (KaTeX's) stay files: the page's CSP allows fonts from its own origin, not data: URLs.
    assetsInlineLimit: (file: string) => (/\.(woff2?|ttf)$/.test(file) ? false : undefined),
  },
  server: {
    proxy: {
      "/ws": { target: server.replace(/^http/, "ws"), ws: true },
      "/auth": server,
      "/sessions": server,
      "/courses": server,
      "/documents": server,
    },
  },
  test: { environment: "node", include: ["src/**/*.test.ts", "src/**/*.test.tsx"] },
});
