// Lint rules for every TypeScript and JavaScript file; formatting is Prettier's (npm run format).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
    { ignores: ["node_modules/", "dist/", ".local/", "bench/out/", "examples/"] },
    js.configs.recommended,
    ...tseslint.configs.recommended,
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
