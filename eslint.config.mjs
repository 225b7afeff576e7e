// Lint rules for every TypeScript and JavaScript file; formatting is Prettier's (npm run format).
// Unused exports, files and dependencies are knip's (knip.jsonc).
import js from "@eslint/js";
import { createNodeResolver, importX } from "eslint-plugin-import-x";
import tseslint from "typescript-eslint";

// Who may import what. Paths are resolved files (node_modules/ is where npm packages resolve to;
// Node's built-ins resolve to no file and are always allowed), so `import`, `import type`,
// `export ... from`, `import()` and `require()` are all checked.
const boundaries = [
    {
        // The agent is bundled into one file that runs on the host with nothing installed.
        target: "agent/**",
        from: ".",
        except: ["./agent", "./lib"],
        message: "The agent imports only Node's built-ins, agent/ and lib/ (no program code, no npm package).",
    },
    {
        // Shared by the program and the agent: imports nothing above itself.
        target: "lib/**",
        from: ".",
        except: ["./lib"],
        message: "lib/ imports only Node's built-ins and lib/ (nothing from program/, components/, agent/, no npm package).",
    },
    {
        target: "agent/commands/**",
        from: "agent/commands",
        message: "An agent command does not import another command: move what they share to agent/ or lib/.",
    },
    {
        // agent/ and lib/ are covered above.
        target: ["index.ts", "program/**", "components/**", "dev/**", "scripts/**", "bench/**"],
        from: "test",
        message: "Only tests import test/: move what is shared to dev/.",
    },
];

export default tseslint.config(
    { ignores: ["node_modules/", "dist/", ".local/", "bench/out/", "examples/"] },
    js.configs.recommended,
    ...tseslint.configs.recommended,
    {
        plugins: { "import-x": importX },
        settings: {
            // The files the import-x rules read to follow imports (by default only JavaScript).
            "import-x/extensions": [".ts", ".js", ".cjs", ".mjs"],
            "import-x/resolver-next": [createNodeResolver({ extensions: [".ts", ".d.ts", ".mjs", ".cjs", ".js", ".json", ".node"] })],
        },
        rules: {
            // No import cycles (type-only imports are erased at compile time: the rule skips them).
            "import-x/no-cycle": ["error", { commonjs: true, ignoreExternal: true }],
        },
    },
    {
        // Tests (test/ and the agent's *.test.ts) may import anything.
        files: ["**/*.ts", "**/*.cjs", "**/*.js", "**/*.mjs"],
        ignores: ["test/**", "**/*.test.ts"],
        rules: {
            "import-x/no-restricted-paths": ["error", { basePath: import.meta.dirname, zones: boundaries }],
        },
    },
    {
        // An import the resolver cannot find would pass the boundaries above unchecked.
        files: ["agent/**", "lib/**"],
        ignores: ["**/*.test.ts"],
        rules: { "import-x/no-unresolved": ["error", { commonjs: true }] },
    },
    {
        languageOptions: {
            globals: {
                process: "readonly",
                console: "readonly",
                Buffer: "readonly",
                __dirname: "readonly",
                require: "readonly",
                module: "writable",
                setTimeout: "readonly",
                clearTimeout: "readonly",
                setInterval: "readonly",
                clearInterval: "readonly",
                setImmediate: "readonly",
                URL: "readonly",
                AbortController: "readonly",
                fetch: "readonly",
            },
        },
        rules: {
            // Unused names are mistakes, except a deliberately ignored parameter or binding (_x).
            "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_", caughtErrors: "none" }],
            // The dynamic provider must `require` inside functions (Pulumi serializes them).
            "@typescript-eslint/no-require-imports": "off",
            // Initial values before a try or a loop are kept on purpose: the next edit may add a path
            // that reads them.
            "no-useless-assignment": "off",
        },
    },
    {
        // Pulumi's dynamic provider interface passes untyped inputs and outputs.
        files: ["components/ssh/**/*.ts"],
        rules: { "@typescript-eslint/no-explicit-any": "off" },
    },
    {
        // Mocks and fixtures take the engine's untyped inputs as they come.
        files: ["test/**/*.ts", "**/*.test.ts"],
        rules: { "@typescript-eslint/no-explicit-any": "off" },
    },
    {
        files: ["**/*.cjs", "**/*.js", "**/*.mjs"],
        languageOptions: { sourceType: "commonjs" },
    },
    {
        files: ["**/*.mjs"],
        languageOptions: { sourceType: "module" },
    },
);
