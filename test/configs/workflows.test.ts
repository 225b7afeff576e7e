// The GitHub Actions workflows: actionlint (with shellcheck on every `run:` block) on each of them,
// and the properties the deploy story rests on, read from the parsed YAML: the preview runs the unit
// tests and previews on pull requests; a release tag deploys prod behind a reviewed environment,
// one deploy at a time, with the OIDC role and no long-lived AWS keys.
import * as assert from "assert";
import * as fs from "fs";
import * as path from "path";
import { parse } from "yaml";
import { requireTools, run, RunResult, tempDir, writeFile } from "./helpers";

const REPO = path.resolve(__dirname, "..", "..");
const WORKFLOWS = path.join(REPO, ".github", "workflows");
const ACTIONLINT_SCRIPT = path.join(REPO, "scripts", "actionlint.sh");

// Workflow YAML has no schema here; the tests read the fields they check.
type Workflow = any;
type Step = { id?: string; uses?: string; run?: string; with?: Record<string, unknown>; env?: Record<string, string>; if?: string };

function actionlint(args: string[], cwd = REPO): RunResult {
    return run("bash", [ACTIONLINT_SCRIPT, "-no-color", ...args], { cwd, timeout: 600_000 });
}

function readWorkflow(name: string): Workflow {
    return parse(fs.readFileSync(path.join(WORKFLOWS, name), "utf8"));
}

function stepsUsing(steps: Step[], action: string): Step[] {
    return steps.filter((s) => typeof s.uses === "string" && s.uses.split("@")[0] === action);
}

/** Every string in a YAML document, for properties that must hold anywhere in it. */
function strings(node: unknown): string[] {
    if (typeof node === "string") return [node];
    if (Array.isArray(node)) return node.flatMap(strings);
    if (node && typeof node === "object") return Object.entries(node).flatMap(([k, v]) => [k, ...strings(v)]);
    return [];
}

const workflowFiles = fs
    .readdirSync(WORKFLOWS)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();

describe("GitHub Actions workflows", () => {
    before(function () {
        // The first run on a machine builds actionlint from its Go module (about 15 s cold).
        this.timeout(600_000);
        requireTools("bash", "go", "shellcheck");
        const r = run("bash", [ACTIONLINT_SCRIPT, "--print-path"], { cwd: REPO, timeout: 600_000 });
        assert.strictEqual(r.status, 0, `scripts/actionlint.sh could not provide actionlint:\n${r.stderr}`);
    });

    it("are the preview and the deploy workflow", () => {
        assert.deepStrictEqual(workflowFiles, ["deploy.yml", "preview.yml"]);
    });

    for (const file of workflowFiles) {
        it(`${file} passes actionlint, shellcheck included`, () => {
            const r = actionlint([path.join(".github", "workflows", file)]);
            assert.strictEqual(r.status, 0, `actionlint reported problems in ${file} (exit ${r.status}):\n${r.stdout}${r.stderr}`);
        });
    }

    it("actionlint reports a broken workflow and the shellcheck finding in a run: block", () => {
        // The control for the checks above: a pass must mean something.
        const dir = tempDir("actionlint");
        writeFile(
            path.join(dir, "broken.yml"),
            [
                "name: broken",
                "on: push",
                "jobs:",
                "  a:",
                "    runs-on: ubuntu-latest",
                "    steps:",
                "      - run: echo $UNQUOTED",
                '      - run: echo "${{ github.no_such_context }}"',
                "",
            ].join("\n"),
        );
        const r = actionlint(["broken.yml"], dir);
        assert.strictEqual(r.status, 1, `expected findings (exit 1), got exit ${r.status}:\n${r.stdout}${r.stderr}`);
        assert.match(r.stdout, /SC2086/, r.stdout);
        assert.match(r.stdout, /no_such_context/, r.stdout);
    });

    describe("preview.yml", () => {
        const wf = readWorkflow("preview.yml");
        const steps: Step[] = wf.jobs.preview.steps;

        it("runs on pull requests, the unit tests first, then a preview of staging and prod", () => {
            assert.ok(wf.on.pull_request, "triggered by pull_request");
            assert.deepStrictEqual(wf.jobs.preview.strategy.matrix.stack, ["staging", "prod"]);
            const testAt = steps.findIndex((s) => s.run === "npm test");
            const preview = stepsUsing(steps, "pulumi/actions");
            assert.ok(testAt >= 0, "npm test step");
            assert.strictEqual(preview.length, 1);
            assert.strictEqual(preview[0].with?.command, "preview");
            assert.ok(steps.indexOf(preview[0]) > testAt, "the preview runs after the unit tests");
        });

        it("checks the pull request's migrations against the release the stack runs, comments the result, and fails on a refusal", () => {
            const check = steps.find((s) => s.id === "migrations");
            assert.ok(check?.run, "a migrations step");
            assert.match(check.run, /npm run -s check-migrations -- --live "\$live" --release "\$new" --stack "\$STACK"/);
            assert.match(check.run, /release-archive\.sh HEAD /);
            const comment = steps.find((s) => s.run?.startsWith("gh pr comment"));
            assert.ok(comment && steps.indexOf(comment) > steps.indexOf(check), "the result is commented after the check");
            assert.strictEqual(comment.env?.GH_TOKEN, "${{ secrets.GITHUB_TOKEN }}");
            const fail = steps.find((s) => s.if === "steps.migrations.outputs.refused == 'true'");
            assert.ok(fail && steps.indexOf(fail) > steps.indexOf(comment), "a refusal fails the job after the comment");
            const preview = stepsUsing(steps, "pulumi/actions")[0];
            assert.ok(steps.indexOf(preview) < steps.indexOf(check), "the preview's comment comes first");
        });
    });

    describe("deploy.yml", () => {
        const wf = readWorkflow("deploy.yml");
        const deploy = wf.jobs.deploy;
        const steps: Step[] = deploy.steps;

        it("runs on a pushed release tag only", () => {
            assert.deepStrictEqual(Object.keys(wf.on), ["push"]);
            assert.deepStrictEqual(wf.on.push.tags, ["v[0-9]*"]);
            assert.strictEqual(wf.on.push.branches, undefined);
        });

        it("deploys in the production environment, one deploy at a time, never cancelling one", () => {
            assert.strictEqual(deploy.environment.name, "production");
            assert.strictEqual(deploy.concurrency.group, "deploy-prod");
            assert.strictEqual(deploy.concurrency["cancel-in-progress"], false);
        });

        it("runs `pulumi up` of prod with the version and the archive from the tag's build", () => {
            const up = stepsUsing(steps, "pulumi/actions");
            assert.strictEqual(up.length, 1);
            assert.strictEqual(up[0].with?.command, "up");
            assert.strictEqual(up[0].with?.["stack-name"], "prod");
            const configMap = String(up[0].with?.["config-map"]);
            assert.match(configMap, /"slotshift:releaseVersion": \{value: "\$\{\{ needs\.build\.outputs\.version \}\}"/);
            assert.match(configMap, /"slotshift:releaseSource": \{value: "dist\/release\/\$\{\{ needs\.build\.outputs\.archive \}\}"/);
            assert.deepStrictEqual(deploy.needs, "build");
            assert.ok(
                steps.some((s) => typeof s.run === "string" && /sha256sum -c/.test(s.run)),
                "the downloaded archive is checked against the build's sha256",
            );
        });

        it("has the preview's secrets story: OIDC role, passphrase secret, backend variable", () => {
            assert.strictEqual(deploy.permissions["id-token"], "write");
            const aws = stepsUsing(steps, "aws-actions/configure-aws-credentials");
            assert.strictEqual(aws.length, 1);
            assert.strictEqual(aws[0].with?.["role-to-assume"], "${{ secrets.AWS_DEPLOY_ROLE_ARN }}");
            const up = stepsUsing(steps, "pulumi/actions")[0];
            assert.strictEqual(up.with?.["cloud-url"], "${{ vars.PULUMI_BACKEND_URL }}");
            assert.strictEqual(up.env?.PULUMI_CONFIG_PASSPHRASE, "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}");
        });

        it("nor any workflow holds long-lived AWS keys", () => {
            for (const file of workflowFiles) {
                const text = strings(readWorkflow(file)).join("\n");
                assert.doesNotMatch(text, /aws-access-key-id|aws-secret-access-key|AWS_ACCESS_KEY_ID|AWS_SECRET_ACCESS_KEY/, file);
            }
        });
    });
});
