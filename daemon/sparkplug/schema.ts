// The Sparkplug B payload message (Sparkplug 3.0 specification, chapter 6 "Payloads", and its Appendix A
// field listing) as a protobufjs JSON descriptor: field names, numbers and wire types are the
// specification's facts; extension ranges are left out (protobufjs skips unknown fields when decoding).
// The value oneofs are declared as plain optional fields: the wire format is the same, and protobufjs' oneof
// bookkeeping (deleting the other members on every decoded metric) made decoding several times slower.
import protobuf from 'protobufjs'

const scalarOneof = (first: number) => ({
  int_value: { type: 'uint32', id: first },
  long_value: { type: 'uint64', id: first + 1 },
  float_value: { type: 'float', id: first + 2 },
  double_value: { type: 'double', id: first + 3 },
  boolean_value: { type: 'bool', id: first + 4 },
  string_value: { type: 'string', id: first + 5 },
})

const opaque = { fields: {} }

const templateParameterFields = { name: { type: 'string', id: 1 }, type: { type: 'uint32', id: 2 }, ...scalarOneof(3), extension_value: { type: 'ParameterValueExtension', id: 9 } }
const dataSetValueFields = { ...scalarOneof(1), extension_value: { type: 'DataSetValueExtension', id: 7 } }
const propertyValueFields = {
  type: { type: 'uint32', id: 1 },
  is_null: { type: 'bool', id: 2 },
  ...scalarOneof(3),
  propertyset_value: { type: 'PropertySet', id: 9 },
  propertysets_value: { type: 'PropertySetList', id: 10 },
  extension_value: { type: 'PropertyValueExtension', id: 11 },
}
const metricValueFields = {
  ...scalarOneof(10),
  bytes_value: { type: 'bytes', id: 16 },
  dataset_value: { type: 'DataSet', id: 17 },
  template_value: { type: 'Template', id: 18 },
  extension_value: { type: 'MetricValueExtension', id: 19 },
}

export const SPARKPLUG_B_DESCRIPTOR = {
  nested: {
    org: { nested: { eclipse: { nested: { tahu: { nested: { protobuf: { nested: {
      Payload: {
        fields: {
          timestamp: { type: 'uint64', id: 1 },
          metrics: { rule: 'repeated', type: 'Metric', id: 2 },
          seq: { type: 'uint64', id: 3 },
          uuid: { type: 'string', id: 4 },
          body: { type: 'bytes', id: 5 },
        },
        nested: {
          Template: {
            fields: {
              version: { type: 'string', id: 1 },
              metrics: { rule: 'repeated', type: 'Metric', id: 2 },
              parameters: { rule: 'repeated', type: 'Parameter', id: 3 },
              template_ref: { type: 'string', id: 4 },
              is_definition: { type: 'bool', id: 5 },
            },
            nested: {
              Parameter: {
                fields: templateParameterFields,
                nested: { ParameterValueExtension: opaque },
              },
            },
          },
          DataSet: {
            fields: {
              num_of_columns: { type: 'uint64', id: 1 },
              columns: { rule: 'repeated', type: 'string', id: 2 },
              types: { rule: 'repeated', type: 'uint32', id: 3 },
              rows: { rule: 'repeated', type: 'Row', id: 4 },
            },
            nested: {
              DataSetValue: { fields: dataSetValueFields, nested: { DataSetValueExtension: opaque } },
              Row: { fields: { elements: { rule: 'repeated', type: 'DataSetValue', id: 1 } } },
            },
          },
          PropertyValue: { fields: propertyValueFields, nested: { PropertyValueExtension: opaque } },
          PropertySet: { fields: { keys: { rule: 'repeated', type: 'string', id: 1 }, values: { rule: 'repeated', type: 'PropertyValue', id: 2 } } },
          PropertySetList: { fields: { propertyset: { rule: 'repeated', type: 'PropertySet', id: 1 } } },
          MetaData: {
            fields: {
              is_multi_part: { type: 'bool', id: 1 },
              content_type: { type: 'string', id: 2 },
              size: { type: 'uint64', id: 3 },
              seq: { type: 'uint64', id: 4 },
              file_name: { type: 'string', id: 5 },
              file_type: { type: 'string', id: 6 },
              md5: { type: 'string', id: 7 },
              description: { type: 'string', id: 8 },
            },
          },
          Metric: {
            fields: {
              name: { type: 'string', id: 1 },
              alias: { type: 'uint64', id: 2 },
              timestamp: { type: 'uint64', id: 3 },
              datatype: { type: 'uint32', id: 4 },
              is_historical: { type: 'bool', id: 5 },
              is_transient: { type: 'bool', id: 6 },
              is_null: { type: 'bool', id: 7 },
              metadata: { type: 'MetaData', id: 8 },
              properties: { type: 'PropertySet', id: 9 },
              ...metricValueFields,
            },
            nested: { MetricValueExtension: opaque },
          },
        },
      },
    } } } } } } } },
  },
}

/** Metric data types (Sparkplug 3.0, 6.4.16). */
export const DataType = {
  Unknown: 0,
  Int8: 1,
  Int16: 2,
  Int32: 3,
  Int64: 4,
  UInt8: 5,
  UInt16: 6,
  UInt32: 7,
  UInt64: 8,
  Float: 9,
  Double: 10,
  Boolean: 11,
  String: 12,
  DateTime: 13,
  Text: 14,
  UUID: 15,
  DataSet: 16,
  Bytes: 17,
  File: 18,
  Template: 19,
  PropertySet: 20,
  PropertySetList: 21,
} as const
export type DataTypeCode = (typeof DataType)[keyof typeof DataType]

/** Every message of the file is proto2: optional scalars keep explicit presence (a seq or value of 0 is sent). */
function proto2<T>(node: T): T {
  if (node !== null && typeof node === 'object') {
    const o = node as Record<string, unknown>
    if ('fields' in o) o.edition = 'proto2'
    for (const v of Object.values(o)) proto2(v)
  }
  return node
}

export const PayloadType: protobuf.Type = protobuf.Root.fromJSON(proto2(SPARKPLUG_B_DESCRIPTOR)).lookupType('org.eclipse.tahu.protobuf.Payload')
