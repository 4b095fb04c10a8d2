// One-file launcher for a single-node OpenSearch 2.19 built from its Maven Central jars.
// Run (no build step):  java -cp 'lib/*' Launcher.java key=value ...
// Every argument is a node setting (path.home, http.port, ...). The plugins below are loaded from the
// classpath when their jar is present; deploy/dev/opensearch.sh fetches the jars and passes the settings.
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;

import org.opensearch.common.logging.LogConfigurator;
import org.opensearch.common.settings.Settings;
import org.opensearch.env.Environment;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.plugins.Plugin;

public class Launcher {
    // Classpath plugins (2.x class names). The first one is required: it provides the netty4 transports.
    static final String[] PLUGINS = {
        "org.opensearch.transport.Netty4Plugin",            // transport-netty4-client
        "org.opensearch.index.reindex.ReindexPlugin",       // reindex-client: _reindex, _update_by_query, _delete_by_query
        "org.opensearch.painless.PainlessPlugin",           // lang-painless: scripts
        "org.opensearch.analysis.common.CommonAnalysisPlugin", // analysis-common: standard analyzers/filters
        "org.opensearch.index.mapper.MapperExtrasPlugin",   // mapper-extras-client: scaled_float, rank_feature, ...
    };

    static final class DevNode extends Node {
        DevNode(Environment env, Collection<Class<? extends Plugin>> plugins) {
            super(env, plugins, true);
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder builder = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("expected key=value, got: " + arg);
            }
            builder.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = builder.build();

        LogConfigurator.registerErrorListener();
        LogConfigurator.configureWithoutConfig(settings);
        Environment env = InternalSettingsPreparer.prepareEnvironment(
            settings, Collections.emptyMap(), null, () -> settings.get("node.name", "lambdaflow-dev"));

        List<Class<? extends Plugin>> plugins = new ArrayList<>();
        for (String name : PLUGINS) {
            try {
                plugins.add(Class.forName(name).asSubclass(Plugin.class));
            } catch (ClassNotFoundException e) {
                if (plugins.isEmpty()) {
                    throw e;
                }
                System.err.println("Launcher: optional plugin not on classpath, skipped: " + name);
            }
        }

        Node node = new DevNode(env, plugins);
        CountDownLatch closed = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
                node.awaitClose(20, TimeUnit.SECONDS);
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                closed.countDown();
            }
        }, "lambdaflow-shutdown"));
        node.start();
        System.err.println("Launcher: node started");
        closed.await(); // keep the JVM alive: the node's threads may all be daemons
    }
}
