/** The custom-resource protocol moved to lambda/shared, where every custom-resource handler finds it. */
export * from '../shared/cfn-response';
