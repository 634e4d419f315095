/** CloudFormation tokens of a synthesized template, rendered as a test chooses to deploy them. */
export type Token = string | { Ref?: string; 'Fn::GetAtt'?: [string, string]; 'Fn::Join'?: [string, Token[]] };

/** Renders CloudFormation tokens with the values a deployment would give them: `values` maps a logical-id prefix to its value. */
export function resolveTokens(value: Token, values: Record<string, string>): string {
  if (typeof value === 'string') return value;
  if (value['Fn::Join']) return value['Fn::Join'][1].map((part) => resolveTokens(part, values)).join(value['Fn::Join'][0]);
  const name = value.Ref ?? value['Fn::GetAtt']![0];
  const resolved = Object.entries(values).find(([prefix]) => name.startsWith(prefix))?.[1];
  if (resolved === undefined) throw new Error(`no value for ${JSON.stringify(value)}`);
  return resolved;
}
