// ParquetJavaRead reads Parquet files with parquet-java (parquet-mr), the
// reader of Spark and Hive, without a Hadoop installation: its
// ParquetFileReader over a LocalInputFile with a plain configuration,
// row groups assembled into records the way ParquetReader does.
// ParquetFileReader finds each column's chunk by its path_in_schema, as
// those engines do.
//
// For each file named on the command line it prints tab-separated lines:
//
//	file    {"path":…,"rows":…,"created_by":…,"kv":{…}}
//	column  {"path":…,"type":…,"logical":…,"repetition":…,"codec":…,"encodings":[…],"values":…,"stats":{"nulls":…,"min":…,"max":…}}
//	row     [value, …]
//
// one column line per column chunk (stats only where the chunk has them,
// as parquet-java reads them) and one row line per row, values in schema
// order: null, a number for INT32 and INT64, true or false, a string for
// BYTE_ARRAY, and for DOUBLE the hexadecimal of its bits (exact, NaN and
// infinities included). Errors go to standard error with a non-zero exit.
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;

import org.apache.parquet.ParquetReadOptions;
import org.apache.parquet.column.ColumnDescriptor;
import org.apache.parquet.column.page.PageReadStore;
import org.apache.parquet.column.statistics.Statistics;
import org.apache.parquet.conf.PlainParquetConfiguration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.convert.GroupRecordConverter;
import org.apache.parquet.hadoop.ParquetFileReader;
import org.apache.parquet.hadoop.metadata.BlockMetaData;
import org.apache.parquet.hadoop.metadata.ColumnChunkMetaData;
import org.apache.parquet.hadoop.metadata.ParquetMetadata;
import org.apache.parquet.io.ColumnIOFactory;
import org.apache.parquet.io.InputFile;
import org.apache.parquet.io.LocalInputFile;
import org.apache.parquet.io.MessageColumnIO;
import org.apache.parquet.io.RecordReader;
import org.apache.parquet.io.api.Binary;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Type;

public class ParquetJavaRead {
    public static void main(String[] args) throws Exception {
        PrintStream out = new PrintStream(new java.io.FileOutputStream(java.io.FileDescriptor.out), false, StandardCharsets.UTF_8);
        ParquetReadOptions opts = ParquetReadOptions.builder(new PlainParquetConfiguration()).build();
        // ParquetFileReader.open(InputFile, ParquetReadOptions), looked up
        // by reflection: javac resolving the overloads would need Hadoop's
        // Configuration, which one of them names and this reader runs without.
        Method open = ParquetFileReader.class.getMethod("open", InputFile.class, ParquetReadOptions.class);
        for (String path : args) {
            try (ParquetFileReader r = (ParquetFileReader) open.invoke(null, new LocalInputFile(Paths.get(path)), opts)) {
                read(out, path, r);
            } catch (Exception e) {
                out.flush();
                Throwable cause = e instanceof InvocationTargetException ? e.getCause() : e;
                throw new Exception(path + ": " + cause, cause);
            }
        }
        out.flush();
        if (out.checkError()) {
            System.exit(1);
        }
    }

    static void read(PrintStream out, String path, ParquetFileReader r) throws Exception {
        ParquetMetadata md = r.getFooter();
        MessageType schema = md.getFileMetaData().getSchema();
        StringBuilder b = new StringBuilder("file\t{\"path\":");
        str(b, path);
        b.append(",\"rows\":").append(r.getRecordCount()).append(",\"created_by\":");
        str(b, md.getFileMetaData().getCreatedBy());
        b.append(",\"kv\":{");
        String sep = "";
        for (Map.Entry<String, String> kv : new TreeMap<>(md.getFileMetaData().getKeyValueMetaData()).entrySet()) {
            b.append(sep);
            str(b, kv.getKey());
            b.append(':');
            str(b, kv.getValue());
            sep = ",";
        }
        out.println(b.append("}}"));

        for (BlockMetaData block : md.getBlocks()) {
            for (ColumnChunkMetaData c : block.getColumns()) {
                // The schema's column at the chunk's path: parquet-java fails
                // here (and in readNextRowGroup) when a chunk's path names none.
                ColumnDescriptor d = schema.getColumnDescription(c.getPath().toArray());
                PrimitiveType pt = d.getPrimitiveType();
                b = new StringBuilder("column\t{\"path\":");
                str(b, c.getPath().toDotString());
                b.append(",\"type\":");
                str(b, pt.getPrimitiveTypeName().name());
                b.append(",\"logical\":");
                str(b, pt.getLogicalTypeAnnotation() == null ? "" : pt.getLogicalTypeAnnotation().toString());
                b.append(",\"repetition\":");
                str(b, pt.getRepetition().name());
                b.append(",\"codec\":");
                str(b, c.getCodec().name());
                b.append(",\"encodings\":[");
                sep = "";
                for (Object e : new TreeSet<>(c.getEncodings().stream().map(Object::toString).toList())) {
                    b.append(sep);
                    str(b, e.toString());
                    sep = ",";
                }
                b.append("],\"values\":").append(c.getValueCount());
                Statistics<?> st = c.getStatistics();
                if (st != null && !st.isEmpty()) {
                    b.append(",\"stats\":{\"nulls\":").append(st.isNumNullsSet() ? st.getNumNulls() : -1);
                    if (st.hasNonNullValue()) {
                        b.append(",\"min\":");
                        value(b, pt.getPrimitiveTypeName(), st.genericGetMin());
                        b.append(",\"max\":");
                        value(b, pt.getPrimitiveTypeName(), st.genericGetMax());
                    }
                    b.append('}');
                }
                out.println(b.append('}'));
            }
        }

        MessageColumnIO io = new ColumnIOFactory().getColumnIO(schema);
        PageReadStore pages;
        while ((pages = r.readNextRowGroup()) != null) {
            RecordReader<Group> rr = io.getRecordReader(pages, new GroupRecordConverter(schema));
            for (long i = 0; i < pages.getRowCount(); i++) {
                Group g = rr.read();
                b = new StringBuilder("row\t[");
                for (int f = 0; f < schema.getFieldCount(); f++) {
                    if (f > 0) {
                        b.append(',');
                    }
                    Type t = schema.getType(f);
                    if (g.getFieldRepetitionCount(f) == 0) {
                        b.append("null");
                        continue;
                    }
                    PrimitiveTypeName n = t.asPrimitiveType().getPrimitiveTypeName();
                    switch (n) {
                        case INT32 -> value(b, n, g.getInteger(f, 0));
                        case INT64 -> value(b, n, g.getLong(f, 0));
                        case DOUBLE -> value(b, n, g.getDouble(f, 0));
                        case BOOLEAN -> value(b, n, g.getBoolean(f, 0));
                        case BINARY -> value(b, n, g.getBinary(f, 0));
                        default -> throw new Exception("column " + t.getName() + ": unexpected type " + n);
                    }
                }
                out.println(b.append(']'));
            }
        }
    }

    static void value(StringBuilder b, PrimitiveTypeName n, Object v) {
        switch (n) {
            case DOUBLE -> b.append("\"").append(Long.toHexString(Double.doubleToRawLongBits((Double) v))).append('"');
            case BINARY -> str(b, new String(((Binary) v).getBytes(), StandardCharsets.UTF_8));
            default -> b.append(v);
        }
    }

    static void str(StringBuilder b, String s) {
        if (s == null) {
            b.append("null");
            return;
        }
        b.append('"');
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        b.append('"');
    }
}
